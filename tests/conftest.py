"""Shared fixtures. The real Label Studio server is started once per test session, on a free port, with its
data in a temporary folder, and stopped at the end."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption("--ls-database", choices=("sqlite", "postgresql"),
                     default=os.environ.get("STUDIO_TEST_LS_DATABASE", "sqlite"),
                     help="the database of the session's Label Studio: its SQLite default, or a PostgreSQL cluster "
                          "the studio creates (needs Debian's postgresql; `make postgres` installs it)")


def pytest_collection_modifyitems(config, items):
    """Every test that uses the real Label Studio (directly or through a fixture) carries the `labelstudio`
    marker, so `-m labelstudio` selects exactly the tests that run again on PostgreSQL."""
    for item in items:
        if "labelstudio" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.labelstudio)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def labelstudio(request, tmp_path_factory):
    """A running Label Studio: yields (url, token, state folder). Started once for the whole session, on the
    database `--ls-database` names."""
    from studio.config import LabelStudioConfig
    from studio.labelstudio.server import start_server, stop_server

    database = request.config.getoption("--ls-database")
    if database == "sqlite":
        state = tmp_path_factory.mktemp("ls-state")
    else:  # PostgreSQL runs as the `postgres` user under root: pytest's own tmp folders (0700) would shut it out
        state = Path(tempfile.mkdtemp(prefix="studio-ls-pg-"))
    cfg = LabelStudioConfig(port=free_port(), username="admin@tests.local", start_timeout_s=300, database=database)
    creds, pid = start_server(state, cfg)
    assert pid is not None, "a test server must be our own, not a reused one"
    yield cfg.base_url, creds.token, state
    stop_server(state)
    if database != "sqlite":
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def ls_client(labelstudio):
    from studio.labelstudio.client import LabelStudioClient

    url, token, _ = labelstudio
    return LabelStudioClient(url, token)


@pytest.fixture
def classification_xml() -> str:
    from studio.labeling import with_choices

    xml = (REPO / "labeling_configs" / "text_classification.xml").read_text()
    return with_choices(xml, ["billing", "cards", "transfers"])


@pytest.fixture
def project(ls_client, classification_xml):
    """A fresh project per test (unique title), on the shared server."""
    return ls_client.create_project(f"test-{uuid.uuid4().hex[:8]}", classification_xml)


@pytest.fixture
def studio_config(tmp_path, labelstudio):
    """A StudioConfig pointing at the test server as an external one, with state in tmp."""
    from studio.config import StudioConfig

    url, token, _ = labelstudio
    return StudioConfig.from_dict({
        "labelstudio": {"url": url, "token": token, "project_title": f"ws-{uuid.uuid4().hex[:8]}"},
        "paths": {"state_dir": str(tmp_path / "state")},
        "demo": {"enabled": False},
    }, root=REPO)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT with random weights + the MiniLM tokenizer, saved to a tmp folder (no download)."""
    import torch
    from transformers import BertConfig, BertModel

    from studio.models import resolve_model_path

    source = Path(resolve_model_path(""))
    folder = tmp_path_factory.mktemp("tiny-bert")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).exists():
            shutil.copy(source / name, folder / name)
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                        vocab_size=30522, max_position_embeddings=128)
    BertModel(config).save_pretrained(str(folder))
    return str(folder)


CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def build_tiny_causal_lm(folder: Path, corpus: list[str]) -> str:
    """A 2-layer, 32-wide Llama with random weights and a byte-level BPE tokenizer (ChatML template) trained on
    `corpus`, saved to `folder`: built offline in about a second. Byte-level, so it encodes any text."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(0)
    # initializer_range 0.3: with the (tied, frozen) embeddings at the usual 0.02, logits stay near uniform and
    # LoRA alone cannot make a peaked distribution in a 32-wide model.
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True, initializer_range=0.3)
    LlamaForCausalLM(config).save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory) -> str:
    """The tiny causal LM with a tokenizer trained on the customer-support demo (UI and integration tests)."""
    import pandas as pd

    demo = pd.read_csv(REPO / "data" / "demo" / "customer_support_demo.csv").head(200)
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-chat"),
                                demo["prompt"].tolist() + demo["response"].tolist())
