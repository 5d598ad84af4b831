"""Stable splits: a task keeps its split across data versions (studio/split_ledger.py, split_dataset(keep=...)),
only new tasks are assigned, a re-split says what moves and keeps the old ledger, and every data version names
its test set by a hash. Offline: snapshots written from hand-made export records, the packaged encoder."""

import json

import numpy as np
import pandas as pd
import pytest

from studio.config import PathsConfig, StudioConfig
from studio.curate import CurateConfig, split_dataset
from studio.errors import DataError
from studio.labeling import parse_labeling_config
from studio.records import annotations_frame, tasks_frame
from studio.snapshot import SnapshotStore
from studio.split_ledger import LEDGER_FILE, SplitLedger, moved_count, moves, task_set_hash
from studio.tasks import kind_named
from studio.workspace import Workspace

SINGLE = kind_named("single_label", ["a", "b", "c", "d"])
CLASSES = ["card", "refund", "transfer"]
XML = ('<View><Text name="text" value="$text"/><Choices name="intent" toName="text">'
       + "".join(f'<Choice value="{c}"/>' for c in CLASSES) + "</Choices></View>")
WORDS = ("blue green river stone cloud apple window music paper garden silver winter coffee planet bridge "
         "candle forest mirror rocket violin thunder island marble lantern pepper").split()


def frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"task_id": np.arange(1, n + 1), "text": [f"t{i}" for i in range(n)],
                         "label": rng.choice(list("abcd"), size=n, p=[0.4, 0.3, 0.2, 0.1])})


def test_kept_tasks_stay_and_only_new_tasks_are_assigned_towards_the_ratios():
    first = split_dataset(frame(600), kind=SINGLE, seed=0).df
    keep = dict(zip(first["task_id"], first["split"]))
    grown = frame(640, seed=0)  # the same 600 tasks (same labels) and 40 new ones
    grown.loc[:599, "label"] = first["label"].to_numpy()
    second = split_dataset(grown, kind=SINGLE, seed=0, keep=keep)
    again = dict(zip(second.df["task_id"], second.df["split"]))
    assert all(again[t] == s for t, s in keep.items())
    assert second.kept == 600 and second.assigned == 40
    shares = second.df["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.8, abs=0.02) and shares["test"] == pytest.approx(0.1, abs=0.02)
    # Without the ledger a grown data set is split afresh: the old behaviour moved most test tasks.
    fresh = split_dataset(grown, kind=SINGLE, seed=0).df
    old_test = {t for t, s in keep.items() if s == "test"}
    still = len(old_test & set(fresh.loc[fresh["split"] == "test", "task_id"]))
    assert still < len(old_test)


def test_a_new_task_grouped_with_a_kept_one_joins_its_split_and_straddling_groups_are_warned():
    df = frame(40)
    keep = {1: "test", 2: "train"}
    groups = np.arange(40)
    groups[2] = 0       # task 3 (new) is a near-duplicate of task 1 (kept in test)
    groups[[4, 5]] = 7  # tasks 5 and 6: new, in one group
    groups[1] = 0       # task 2, kept in train, is in the same group: that group straddles two splits
    res = split_dataset(df, kind=SINGLE, seed=0, groups=groups, keep=keep)
    split = dict(zip(res.df["task_id"], res.df["split"]))
    assert split[1] == "test" and split[2] == "train" and split[3] in {"test", "train"}
    assert split[5] == split[6]
    assert any("span two splits" in w for w in res.warnings)


def test_a_ledger_naming_an_unknown_split_is_refused():
    with pytest.raises(DataError, match="recorded in split 'holdout'"):
        split_dataset(frame(20), kind=SINGLE, keep={1: "holdout"})


def test_task_set_hash_names_the_set_of_tasks():
    assert task_set_hash([3, 1, 2]) == task_set_hash(["1", "2", "3", 3]) != task_set_hash([1, 2])
    assert task_set_hash([]) == ""


# -- through the curation stage ------------------------------------------------------------------------------
def ann(aid: int, label: str) -> dict:
    return {"id": aid, "completed_by": 1, "was_cancelled": False, "lead_time": 1.0,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "result": [{"from_name": "intent", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]}


def snapshot_with(tmp_path, n: int):
    """n labeled tasks with varied texts (ids 1..n); a larger n keeps the first tasks as they were."""
    rng = np.random.default_rng(0)
    words = [" ".join(rng.choice(WORDS, size=6)) for _ in range(n)]
    recs = [{"id": i + 1, "data": {"text": f"{CLASSES[i % 3]} {words[i]}"},
             "annotations": [ann(1000 + i, CLASSES[i % 3])]} for i in range(n)]
    schema = parse_labeling_config(XML)
    store = SnapshotStore(tmp_path / "snapshots")
    snap, _ = store.write(tasks_frame(recs, schema), annotations_frame(recs, schema, {1: "ann@x"}), schema=schema,
                          project_id=1, project_title="p", source_url="http://x")
    return snap


@pytest.fixture
def ws(tmp_path):
    return Workspace(StudioConfig(root=tmp_path, paths=PathsConfig(state_dir=str(tmp_path / "state"))))


def splits_of(prepared) -> dict[int, str]:
    df = prepared.split.df
    return dict(zip(df["task_id"].astype(int), df["split"]))


def test_exports_keep_every_task_in_its_split_as_labels_are_added(ws, tmp_path):
    preview = ws.curation.prepare(snapshot_with(tmp_path / "a", 90), export=False)
    assert ws.curation.split_ledger() is None  # a preview records nothing
    first = ws.curation.prepare(snapshot_with(tmp_path / "a", 90))
    ledger = ws.curation.split_ledger()
    assert splits_of(first) == splits_of(preview) == {int(t): s for t, s in ledger.assignments.items()}
    test_hash = first.export.manifest["test_set"]["hash"]
    assert test_hash == task_set_hash(t for t, s in splits_of(first).items() if s == "test")
    assert f"`{test_hash}`" in (first.export.path / "README.md").read_text()

    second = ws.curation.prepare(snapshot_with(tmp_path / "b", 94))  # 4 more labels
    after = splits_of(second)
    assert all(after[t] == s for t, s in splits_of(first).items())
    assert second.split.kept == 90 and second.split.assigned == 4
    assert moved_count(second.split_moves) == 0 and second.split_moves.loc["new"].sum() == 4
    assert len(ws.curation.split_ledger().assignments) == 94
    if not any(after[t] == "test" for t in range(91, 95)):
        assert second.export.manifest["test_set"]["hash"] == test_hash


def test_changed_settings_move_nothing_until_a_resplit_which_keeps_the_old_ledger(ws, tmp_path):
    snap = snapshot_with(tmp_path / "a", 90)
    before = splits_of(ws.curation.prepare(snap))
    ws.curation.save_curate_settings(CurateConfig(ratios=[0.6, 0.2, 0.2], seed=3))
    kept = ws.curation.prepare(snap)
    assert splits_of(kept) == before and "keep it" in kept.split_note and "0.6/0.2/0.2" in kept.split_note

    preview = ws.curation.prepare(snap, export=False, resplit=True)
    assert preview.split_note is None and moved_count(preview.split_moves) > 0
    assert splits_of(ws.curation.prepare(snap, export=False)) == before  # a preview of a re-split changes nothing
    done = ws.curation.prepare(snap, resplit=True)
    assert splits_of(done) == splits_of(preview) != before
    ledger = ws.curation.split_ledger()
    assert ledger.ratios == [0.6, 0.2, 0.2] and ledger.seed == 3
    history = list((ws.project_dir / "split_history").glob("splits-*.json"))
    assert len(history) == 1 and json.loads(history[0].read_text())["ratios"] == [0.8, 0.1, 0.1]
    assert ws.curation.prepare(snap).split_note is None  # the settings are the ledger's again


def test_a_resplit_keeps_the_entries_of_tasks_outside_the_curation(ws, tmp_path):
    ws.curation.prepare(snapshot_with(tmp_path / "a", 90))
    ledger = ws.curation.split_ledger()
    ledger.assignments["999"] = "test"  # a task excluded since, say
    ledger.save(ws.project_dir)
    ws.curation.prepare(snapshot_with(tmp_path / "a", 90), resplit=True)
    assert ws.curation.split_ledger().assignments["999"] == "test"


def test_a_broken_ledger_is_a_clear_error_and_not_overwritten(ws, tmp_path):
    (ws.project_dir).mkdir(parents=True, exist_ok=True)
    (ws.project_dir / LEDGER_FILE).write_text("{not json")
    with pytest.raises(DataError, match="cannot be read"):
        ws.curation.prepare(snapshot_with(tmp_path / "a", 30))
    assert (ws.project_dir / LEDGER_FILE).read_text() == "{not json"


def test_moves_counts_tasks_once_and_new_ones_apart():
    old = SplitLedger(ratios=[0.8, 0.1, 0.1], seed=0, assignments={"1": "train", "2": "test"})
    df = pd.DataFrame({"task_id": [1, 1, 2, 3], "split": ["train", "train", "validation", "test"]})
    table = moves(old, df)
    assert table.loc["train", "train"] == 1 and table.loc["test", "validation"] == 1 and table.loc["new", "test"] == 1
    assert moved_count(table) == 1
