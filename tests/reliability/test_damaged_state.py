"""Damaged state (issue 17, section 2): a damaged file is named, the rest keeps working, nothing is rewritten or
lost, and a sync repairs a damaged snapshot. Faults are made for real: truncated files, NUL bytes, a crash's
leftover folder, two processes deciding at once."""

import json
import multiprocessing
import os
import time

import pytest

from studio.errors import DamagedSnapshot, SnapshotNotFound
from studio.labeling import parse_labeling_config
from studio.records import annotations_frame, tasks_frame
from studio.review import Decision, DecisionLog, effective_decisions, live_decisions
from studio.snapshot import SnapshotStore

XML = ('<View><Text name="text" value="$text"/><Choices name="intent" toName="text">'
       '<Choice value="a"/><Choice value="b"/></Choices></View>')
CLASSES = ("a", "b")


def relabel(task: int, label: str = "b", author: str = "ann") -> Decision:
    return Decision(task_id=task, action="relabel", label=label, author=author, snapshot_id="s1")


# -- the decisions log ----------------------------------------------------------------------------------------
def test_a_cut_line_and_nul_bytes_are_named_and_the_rest_of_the_log_is_used(tmp_path):
    log = DecisionLog(tmp_path, 1)
    log.append([relabel(1), relabel(2)], classes=CLASSES)
    with open(log.file, "ab") as handle:
        handle.write(b"\x00\x00\x00\x00\n")
        handle.write(json.dumps({"task_id": 3, "action": "relabel"}).encode()[:20])  # a crash mid-write
    before = log.file.read_bytes()
    assert sorted(log.read()["task_id"]) == [1, 2]
    assert "2 damaged line(s) (line 3, 4)" in log.damaged_note and "not changed" in log.damaged_note
    assert log.file.read_bytes() == before  # nothing rewritten

    log.append([relabel(5)], classes=CLASSES)  # the next append starts its own line
    assert sorted(log.read()["task_id"]) == [1, 2, 5]
    assert log.file.read_bytes().startswith(before)


def test_studio_decisions_works_on_a_damaged_log_and_says_so_once(tmp_path, monkeypatch, capsys):
    """Label Studio is not running here: the command works from the stored snapshot, as it does offline."""
    from studio.cli import main
    from studio.config import load_config
    from studio.workspace import Workspace
    from tests.ui.conftest import write_config

    config = write_config(tmp_path, "http://127.0.0.1:9", "token", "p")
    monkeypatch.setenv("STUDIO_CONFIG", config)
    ws = Workspace(load_config(config))
    write_snapshot(ws.store.root)  # project 1, titled "p"
    log = ws.decisions(1)
    log.append([relabel(1)], classes=CLASSES)
    with open(log.file, "a") as handle:
        handle.write('{"task_id": 2, "act')
    assert main(["decisions"]) == 0
    out = capsys.readouterr()
    assert out.err.count("damaged line(s) (line 2)") == 1 and "relabel" in out.out


def _decide_unless_decided(folder: str, tasks: list[int], author: str) -> None:
    """What auto-fix does: read the decisions in force, decide on the tasks nobody decided, append; slowly."""
    log = DecisionLog(folder, 1)
    with log.lock():
        decided = set(effective_decisions(log.read())["task_id"])
        time.sleep(0.5)  # both processes would read the same empty log without the lock
        log.append([relabel(t, author=author) for t in tasks if t not in decided], classes=CLASSES)


def test_two_processes_deciding_at_once_do_not_decide_a_task_twice(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_decide_unless_decided, args=(str(tmp_path), list(range(1, 32)), who))
               for who in ("first", "second")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert all(w.exitcode == 0 for w in workers)
    live = live_decisions(DecisionLog(tmp_path, 1).read())
    assert len(live) == 31 and live["task_id"].is_unique


def test_undo_removes_a_decision_and_its_twin_written_without_the_lock(tmp_path):
    log = DecisionLog(tmp_path, 1)
    log.append([relabel(7, author="first"), relabel(7, author="second")], classes=CLASSES)  # the old race
    log.undo_last(7, author="ann", snapshot_id="s1")
    assert effective_decisions(log.read()).empty


# -- snapshots ------------------------------------------------------------------------------------------------
def write_snapshot(root, texts=("one", "two", "three")):
    schema = parse_labeling_config(XML)
    recs = [{"id": i + 1, "data": {"text": t}, "annotations": [
        {"id": 100 + i, "completed_by": 1, "was_cancelled": False, "lead_time": 1.0,
         "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
         "result": [{"from_name": "intent", "to_name": "text", "type": "choices", "value": {"choices": ["a"]}}]}]}
        for i, t in enumerate(texts)]
    store = SnapshotStore(root)
    tasks, annotations = tasks_frame(recs, schema), annotations_frame(recs, schema, {1: "ann@x"})
    snap, _ = store.write(tasks, annotations, schema=schema, project_id=1, project_title="p", source_url="http://x")
    return store, snap, (tasks, annotations, schema)


def test_a_corrupt_manifest_is_named_and_the_other_snapshots_stay_listed(tmp_path):
    store, good, _ = write_snapshot(tmp_path)
    _, bad, _ = write_snapshot(tmp_path, texts=("other", "texts"))
    (tmp_path / bad.id / "manifest.json").write_text('{"project_id": 1, "cre')
    assert list(store.history()["snapshot_id"]) == [good.id]
    (problem,) = store.damaged()
    assert str(tmp_path / bad.id / "manifest.json") in problem and "damaged" in problem
    with pytest.raises(DamagedSnapshot, match="studio sync --full"):
        store.load(bad.id)


@pytest.mark.parametrize("how", ["truncated", "missing"])
def test_a_damaged_table_is_named_and_writing_the_same_content_repairs_it(tmp_path, how):
    store, snap, (tasks, annotations, schema) = write_snapshot(tmp_path)
    table = tmp_path / snap.id / "tasks.parquet"
    if how == "truncated":
        table.write_bytes(table.read_bytes()[:40])
    else:
        table.unlink()
    with pytest.raises(DamagedSnapshot, match="tasks.parquet"):
        store.latest(1)
    again, created = store.write(tasks, annotations, schema=schema, project_id=1, project_title="p",
                                 source_url="http://x")  # what `studio sync --full` does with the same content
    assert created and again.id == snap.id and len(store.load(snap.id).tasks) == 3
    (aside,) = list(tmp_path.glob(f".damaged-{snap.id}-*"))  # kept for a person to look at, never listed
    assert (aside / "manifest.json").exists() and store.ids() == [snap.id]


def test_a_crashed_writes_folder_is_never_a_snapshot_and_old_ones_are_cleaned(tmp_path):
    store, snap, (tasks, annotations, schema) = write_snapshot(tmp_path)
    leftover = tmp_path / f".tmp-{snap.id}-abc123"
    leftover.mkdir()
    (leftover / "manifest.json").write_text((tmp_path / snap.id / "manifest.json").read_text())
    assert store.ids() == [snap.id]
    old = time.time() - 7200
    os.utime(leftover, (old, old))
    write_snapshot(tmp_path, texts=("a", "new", "one"))
    assert not leftover.exists()


@pytest.mark.parametrize("bad", ["../exports/x", "/etc", "a/b", "..", ""])
def test_a_snapshot_id_that_is_a_path_is_refused(tmp_path, bad):
    store, _, _ = write_snapshot(tmp_path)
    with pytest.raises(SnapshotNotFound, match="is not a snapshot id"):
        store.load(bad)


def test_the_state_folder_is_private(tmp_path):
    from studio.config import PathsConfig, StudioConfig
    from studio.workspace import Workspace

    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    (state / "labelstudio" / "data").mkdir(parents=True)
    db = state / "labelstudio" / "data" / "label_studio.sqlite3"
    db.write_bytes(b"")
    db.chmod(0o644)
    Workspace(StudioConfig(root=tmp_path, paths=PathsConfig(state_dir=str(state))))
    assert state.stat().st_mode & 0o777 == 0o700 and db.stat().st_mode & 0o777 == 0o600


@pytest.mark.labelstudio
def test_an_incremental_sync_over_a_damaged_snapshot_pulls_everything_and_repairs_it(ls_client, project, tmp_path):
    from studio.sync import sync_project

    ls_client.import_tasks(project.id, [{"data": {"text": f"text {i}"}} for i in range(4)])
    store = SnapshotStore(tmp_path)
    first = sync_project(ls_client, store, project.id).snapshot
    (tmp_path / first.id / "annotations.parquet").write_bytes(b"PAR1 not a parquet file")
    again = sync_project(ls_client, store, project.id)
    assert again.mode == "full" and "damaged" in again.note and "annotations.parquet" in again.note
    assert again.snapshot.id == first.id and len(store.load(first.id).tasks) == 4
