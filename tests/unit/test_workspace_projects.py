"""Several projects in one state folder: each workspace keeps its project's state apart (snapshots, decisions,
runs with their `current`, jobs, settings, ...) and shares what every project shares (Label Studio, the embedding
cache); an install with the layout from before several projects is moved once, losing nothing. Offline."""

import fcntl
import logging

import pytest

from studio.config import StudioConfig
from studio.curate import CurateConfig
from studio.errors import ConfigError
from studio.layout import PROJECT_FOLDERS, SHARED_FOLDERS, migrate_flat_layout
from studio.workspace import Workspace


def two_projects(tmp_path, **env) -> StudioConfig:
    return StudioConfig.from_dict({
        "labelstudio": {"project_title": "Banking77 intents"},
        "paths": {"state_dir": str(tmp_path / "state")},
        "projects": {"support": {"title": "Customer support answers", "labeling_config": "labeling_configs/sft.xml"}},
    }, root=tmp_path, **env)


def test_each_project_has_its_own_state_and_shares_label_studio_and_the_cache(tmp_path):
    cfg = two_projects(tmp_path)
    intents, support = Workspace(cfg), Workspace(cfg, project="support")
    state = tmp_path / "state"
    assert intents.key == "intents" and intents.spec.primary and support.spec.title == "Customer support answers"
    for name in PROJECT_FOLDERS:
        assert intents.folder(name) == state / "projects" / "intents" / name
        assert support.folder(name) == state / "projects" / "support" / name
    for name in SHARED_FOLDERS:
        assert intents.folder(name) == support.folder(name) == state / name
    assert intents.runs_root != support.runs_root and intents.jobs_root != support.jobs_root
    assert intents.store.root == state / "projects" / "intents" / "snapshots"
    assert intents.quality.folder(type("S", (), {"id": "s1"})) == state / "projects" / "intents" / "quality" / "s1"
    assert intents.cache_dir == support.cache_dir == state / "cache"
    assert intents.state_dir == support.state_dir == state  # Label Studio's folder, credentials, detached.json
    assert intents.decisions(1).file.parent != support.decisions(1).file.parent
    assert intents.sibling("support").key == "support" and intents.sibling("intents") is intents


def test_a_model_promoted_in_one_project_is_not_the_current_model_of_another(tmp_path):
    """The bug this layout fixes: runs/current was shared, so one project's model answered for another."""
    from training.runs import RunRegistry

    cfg = two_projects(tmp_path)
    intents, support = Workspace(cfg), Workspace(cfg, project="support")
    (intents.runs_root / "current").write_text("run-20260101-000000-aaaa")
    assert (support.runs_root / "current").exists() is False
    assert RunRegistry(support.runs_root).current() is None


def test_saved_curate_settings_belong_to_their_project(tmp_path):
    cfg = two_projects(tmp_path)
    intents, support = Workspace(cfg), Workspace(cfg, project="support")
    intents.curation.save_curate_settings(CurateConfig(ratios=[0.6, 0.2, 0.2]))
    assert intents.cfg.curate.ratios == [0.6, 0.2, 0.2] and support.cfg.curate.ratios == [0.8, 0.1, 0.1]
    assert cfg.curate.ratios == [0.8, 0.1, 0.1]  # the shared configuration is untouched
    assert Workspace(cfg, project="support").cfg.curate.ratios == [0.8, 0.1, 0.1]
    assert Workspace(cfg).cfg.curate.ratios == [0.6, 0.2, 0.2]


def test_the_project_comes_from_the_argument_else_studio_project_else_the_primary(tmp_path):
    assert Workspace(two_projects(tmp_path)).key == "intents"
    assert Workspace(two_projects(tmp_path, default_project="support")).key == "support"
    assert Workspace(two_projects(tmp_path, default_project="support"), project="intents").key == "intents"
    with pytest.raises(ConfigError, match="no configured project 'suport'. Did you mean 'support'"):
        Workspace(two_projects(tmp_path), project="suport")


def _old_layout(state):
    """What an install from before several projects holds: the per-project folders directly in the state folder."""
    files = {
        "snapshots/abc/manifest.json": '{"id": "abc"}',
        "decisions/project-1.jsonl": '{"task_id": 1}\n',
        "runs/current": "run-1",
        "runs/run-1/metrics.json": "{}",
        "jobs/job-1/status.json": '{"state": "succeeded"}',
        "settings/curate.json": '{"curate": {"ratios": [0.7, 0.2, 0.1]}, "saved_at": "then"}',
        "quality/abc/meta.json": "{}",
        "review_requests/project-1.jsonl": "{}\n",
        "exports/ds-1/manifest.json": "{}",
    }
    for rel, text in files.items():
        (state / rel).parent.mkdir(parents=True, exist_ok=True)
        (state / rel).write_text(text)
    (state / "labelstudio").mkdir()
    (state / "labelstudio" / "credentials.json").write_text("{}")
    (state / "cache").mkdir()
    return files


def test_the_old_flat_layout_moves_once_into_the_primary_project(tmp_path, caplog):
    state = tmp_path / "state"
    files = _old_layout(state)
    with caplog.at_level(logging.WARNING, logger="studio.layout"):
        ws = Workspace(two_projects(tmp_path), project="support")  # any project's workspace moves the old state
    moved = [r for r in caplog.records if "moved" in r.getMessage()]
    assert len(moved) == 1 and "projects/intents" in moved[0].getMessage()
    for rel, text in files.items():
        assert (state / "projects" / "intents" / rel).read_text() == text
        assert not (state / rel.split("/")[0]).exists()
    assert (state / "labelstudio" / "credentials.json").exists() and (state / "cache").is_dir()  # shared: stay
    assert not (state / "projects" / "support" / "runs" / "current").exists()
    intents = ws.sibling("intents")
    assert intents.cfg.curate.ratios == [0.7, 0.2, 0.1]  # its saved settings came along
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="studio.layout"):
        Workspace(two_projects(tmp_path))
    assert not caplog.records  # said once: nothing left to move


def test_a_half_moved_layout_is_merged_without_losing_a_file(tmp_path):
    """Old folders beside new ones (an old process still wrote to the flat layout): new files move in, identical
    copies are dropped, and a file that differs from the one at the new place is kept under legacy-*/."""
    state = tmp_path / "state"
    new = state / "projects" / "intents"
    (new / "runs").mkdir(parents=True)
    (new / "runs" / "current").write_text("run-2")
    (new / "snapshots" / "abc").mkdir(parents=True)
    (new / "snapshots" / "abc" / "manifest.json").write_text('{"id": "abc"}')
    _old_layout(state)
    assert migrate_flat_layout(state, "intents") == list(PROJECT_FOLDERS)
    assert (new / "runs" / "current").read_text() == "run-2"  # the new layout's own file wins ...
    (kept,) = state.glob("legacy-*/runs/current")
    assert kept.read_text() == "run-1"  # ... and the old one is kept, not lost
    assert (new / "runs" / "run-1" / "metrics.json").exists()  # files only the old layout had moved in
    assert (new / "snapshots" / "abc" / "manifest.json").read_text() == '{"id": "abc"}'
    assert not list(state.glob("legacy-*/snapshots"))  # an identical copy is not kept twice
    assert not (state / "runs").exists() and not (state / "snapshots").exists()
    assert migrate_flat_layout(state, "intents") == []


def test_the_move_waits_while_a_job_of_the_old_layout_runs(tmp_path):
    state = tmp_path / "state"
    _old_layout(state)
    with open(state / "jobs" / "train.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as training.job_control's running job holds it
        assert migrate_flat_layout(state, "intents") == []
        assert (state / "runs" / "current").exists()
    assert "runs" in migrate_flat_layout(state, "intents")
    assert (state / "projects" / "intents" / "jobs" / "train.lock").exists()
