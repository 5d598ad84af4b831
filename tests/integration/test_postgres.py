"""Label Studio on PostgreSQL: the cluster the studio creates under its state folder, started, reused after a
killed run, stopped by `stop_server`; and the refusals (no binaries, a bad URL, a switch of database that would
make the labels seem lost). The rest of the Label Studio tests run on PostgreSQL with `--ls-database=postgresql`
(`make test` runs that pass too)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from studio.config import LabelStudioConfig
from studio.errors import ConfigError
from studio.labelstudio import postgres
from tests.conftest import REPO, free_port


def _have_postgres() -> bool:
    try:
        postgres.binaries()
    except ConfigError:
        return False
    return True


@pytest.fixture
def pg_state():
    """A state folder PostgreSQL's user can reach (pytest's tmp folders are 0700 under root)."""
    state = Path(tempfile.mkdtemp(prefix="studio-pg-test-"))
    yield state
    from studio.labelstudio.server import stop_server

    stop_server(state)
    shutil.rmtree(state, ignore_errors=True)


def _postmaster_pid(state: Path) -> int:
    return int((postgres.cluster_root(state) / "data" / "postmaster.pid").read_text().split()[0])


@pytest.mark.slow
@pytest.mark.skipif(not _have_postgres(), reason="PostgreSQL server programs not installed (make postgres)")
def test_embedded_label_studio_runs_on_its_own_postgresql_cluster(pg_state):
    import psycopg

    from studio.labeling import with_choices
    from studio.labelstudio.client import LabelStudioClient
    from studio.labelstudio.server import server_dir, start_server, stop_server

    cfg = LabelStudioConfig(port=free_port(), database="postgresql", start_timeout_s=300)
    creds, pid = start_server(pg_state, cfg)
    assert pid is not None
    client = LabelStudioClient(cfg.base_url, creds.token)
    xml = with_choices((REPO / "labeling_configs" / "text_classification.xml").read_text(), ["a", "b"])
    project = client.create_project("on-postgres", xml)
    client.import_tasks(project.id, [{"text": f"task {i}"} for i in range(5)])

    # The tasks are in PostgreSQL (not in a SQLite file), reached with the generated password kept 0600.
    record_file = postgres.cluster_root(pg_state) / "postgres.json"
    assert record_file.stat().st_mode & 0o777 == 0o600
    record = json.loads(record_file.read_text())
    with psycopg.connect(host="127.0.0.1", port=record["port"], user=record["user"], password=record["password"],
                         dbname=record["name"]) as conn:
        assert conn.execute("SELECT count(*) FROM task WHERE project_id = %s", (project.id,)).fetchone()[0] == 5
    assert not (server_dir(pg_state) / "data" / "label_studio.sqlite3").exists()
    assert record["password"] not in (server_dir(pg_state) / "server.log").read_text(errors="replace")

    # A killed run leaves the cluster running: the next start finds it and reuses it (same postmaster).
    cluster_pid = _postmaster_pid(pg_state)
    os.killpg(pid, signal.SIGKILL)
    (server_dir(pg_state) / "server.pid").unlink()
    time.sleep(1)
    creds, pid = start_server(pg_state, cfg)
    assert pid is not None and _postmaster_pid(pg_state) == cluster_pid
    assert LabelStudioClient(cfg.base_url, creds.token).get_project(project.id).task_number == 5

    # stop_server (`studio down`) stops both; the data survive a cold start.
    assert stop_server(pg_state)
    assert not (postgres.cluster_root(pg_state) / "data" / "postmaster.pid").exists()
    creds, _ = start_server(pg_state, cfg)
    assert LabelStudioClient(cfg.base_url, creds.token).get_project(project.id).task_number == 5


def test_switching_the_database_of_a_state_folder_is_refused(tmp_path):
    postgres.database_env(tmp_path, "sqlite", "")  # first start: recorded
    with pytest.raises(ConfigError, match="is in sqlite, but .*postgresql.*labels would seem lost"):
        postgres.database_env(tmp_path, "postgresql", "postgresql://ls:pw@db.internal:5432/labelstudio")
    assert postgres.database_env(tmp_path, "sqlite", "") == {"DJANGO_DB": "sqlite"}


def test_an_older_state_folder_with_a_sqlite_database_counts_as_sqlite(tmp_path):
    (tmp_path / "labelstudio" / "data").mkdir(parents=True)
    (tmp_path / "labelstudio" / "data" / "label_studio.sqlite3").write_bytes(b"")
    with pytest.raises(ConfigError, match="is in sqlite"):
        postgres.database_env(tmp_path, "postgresql", "")


def test_an_external_server_is_given_to_label_studio_by_its_variables_and_recorded_without_password(tmp_path):
    env = postgres.database_env(tmp_path, "postgresql", "postgresql://ls:s%40cret@db.internal:6432/labels")
    assert env == {"DJANGO_DB": "default", "POSTGRE_NAME": "labels", "POSTGRE_USER": "ls",
                   "POSTGRE_PASSWORD": "s@cret", "POSTGRE_HOST": "db.internal", "POSTGRE_PORT": "6432"}
    assert "s@cret" not in (tmp_path / "labelstudio" / "database.json").read_text()


@pytest.mark.parametrize("fields, match", [
    ({"database": "mysql"}, "database = 'mysql' is invalid"),
    ({"database": "sqlite", "database_url": "postgresql://a@b/c"}, "database_url"),
    ({"database": "postgresql", "database_url": "http://db/x"}, "database_url"),
])
def test_bad_database_settings_are_refused(fields, match):
    with pytest.raises(ConfigError, match=match):
        LabelStudioConfig(**fields)


def test_a_url_without_database_name_is_refused():
    with pytest.raises(ConfigError, match="not a postgresql://"):
        postgres.from_url("postgresql://ls:pw@db.internal:5432/")


def test_no_postgresql_programs_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(postgres.Path, "glob", lambda self, pattern: iter(()))
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="needs the PostgreSQL server programs"):
        postgres.database_env(tmp_path, "postgresql", "")


def test_sqlite_is_what_label_studio_gets_even_when_the_environment_names_postgresql(monkeypatch, tmp_path):
    from studio.labelstudio.server import Credentials, server_env

    monkeypatch.setenv("DJANGO_DB", "default")
    monkeypatch.setenv("POSTGRE_HOST", "elsewhere")
    env = server_env(tmp_path, Credentials(url="", username="u", password="p", token="t"))
    assert env["DJANGO_DB"] == "sqlite" and "POSTGRE_HOST" not in env
