"""Snapshot tables, validation report, labeled view, content ids and diffs, on hand-made export records."""

import json

import pandas as pd
import pytest

from studio.labeling import parse_labeling_config
from studio.records import annotations_frame, labeled_view, tasks_frame, unlabeled_view, validation_report
from studio.snapshot import SnapshotStore, diff_snapshots

XML = ('<View><Text name="text" value="$text"/><Choices name="intent" toName="text">'
       '<Choice value="a"/><Choice value="b"/></Choices></View>')
USERS = {1: "ann@x", 2: "bob@x", 3: "cy@x"}


def ann(aid, who, labels, *, cancelled=False, t="2026-01-01T00:00:00Z"):
    result = [{"from_name": "intent", "to_name": "text", "type": "choices", "value": {"choices": labels}}]
    return {"id": aid, "completed_by": who, "result": result if labels else [], "was_cancelled": cancelled,
            "lead_time": 1.5, "created_at": t, "updated_at": t}


def records():
    return [
        {"id": 1, "data": {"text": "refund please", "extra": 7}, "annotations": [ann(10, 1, ["a"])],
         "updated_at": "2026-01-01T00:00:01Z"},
        {"id": 2, "data": {"text": "card lost"}, "annotations": [
            ann(11, 1, ["a"], t="2026-01-01T00:00:01Z"), ann(12, 2, ["b"], t="2026-01-01T00:00:02Z")]},
        {"id": 3, "data": {"text": "   "}, "annotations": [ann(13, 1, ["a"])]},
        {"id": 4, "data": {"text": "what?"}, "annotations": [ann(14, 3, ["zzz"]), ann(15, 2, [], cancelled=True)]},
        {"id": 5, "data": {}, "annotations": []},
        {"id": 6, "data": {"text": "three votes"}, "annotations": [ann(16, 1, ["b"]), ann(17, 2, ["b"]),
                                                                  ann(18, 3, ["a"])]},
    ]


@pytest.fixture
def frames():
    schema = parse_labeling_config(XML)
    recs = records()
    return schema, tasks_frame(recs, schema), annotations_frame(recs, schema, USERS)


def test_tables_keep_everything(frames):
    schema, tasks, annotations = frames
    assert list(tasks["task_id"]) == [1, 2, 3, 4, 5, 6]
    assert json.loads(tasks.loc[0, "data"]) == {"text": "refund please", "extra": 7}
    assert tasks.loc[4, "text"] == ""  # missing text field kept as empty, reported below
    assert len(annotations) == 9 and set(annotations["annotator"]) == {"ann@x", "bob@x", "cy@x"}
    assert annotations.set_index("annotation_id").loc[15, "was_cancelled"]


def test_validation_report_lists_every_problem(frames):
    schema, tasks, annotations = frames
    report = validation_report(tasks, annotations, schema)
    by_problem = report.groupby("problem")["task_id"].apply(sorted).to_dict()
    assert by_problem == {"cancelled": [4], "disagreement": [2, 6], "empty_text": [3, 5], "unknown_label": [4]}


def test_labeled_view_majority_and_tie_goes_to_latest(frames):
    schema, tasks, annotations = frames
    view = labeled_view(tasks, annotations, schema).set_index("task_id")
    assert list(view.index) == [1, 2, 6]  # 3: empty text, 4: unknown + cancelled only, 5: no annotation
    assert view.loc[2, "label"] == "b"  # 1-1 tie, bob's is the most recent
    assert view.loc[6, "label"] == "b" and view.loc[6, "agreement"] == pytest.approx(2 / 3)
    assert list(unlabeled_view(tasks, annotations)["task_id"]) == []  # 5 has no text: not in the pool


def test_same_content_same_id_and_no_rewrite(frames, tmp_path):
    schema, tasks, annotations = frames
    store = SnapshotStore(tmp_path)
    kw = dict(schema=schema, project_id=1, project_title="p", source_url="http://x")
    first, created = store.write(tasks, annotations, **kw)
    mtime = (tmp_path / first.id / "manifest.json").stat().st_mtime_ns
    again, created_again = store.write(tasks.copy(), annotations.copy(), **kw)
    assert created and not created_again and again.id == first.id
    assert (tmp_path / first.id / "manifest.json").stat().st_mtime_ns == mtime
    loaded = store.load(first.id)
    pd.testing.assert_frame_equal(loaded.tasks, tasks)
    assert loaded.annotations["labels"].tolist() == annotations["labels"].tolist()
    assert loaded.manifest["counts"]["annotations"] == 9 and loaded.manifest["validation"]["empty_text"] == 2
    assert not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())


def test_changed_label_new_id_and_diff(frames, tmp_path):
    schema, tasks, annotations = frames
    store = SnapshotStore(tmp_path)
    kw = dict(schema=schema, project_id=1, project_title="p", source_url="http://x")
    old, _ = store.write(tasks, annotations, **kw)
    changed = annotations.copy()
    changed.loc[changed["annotation_id"] == 10, "result"] = '[{"changed": true}]'
    changed.loc[changed["annotation_id"] == 10, "labels"] = pd.Series([["b"]], index=changed.index[:1])
    changed = changed[changed["annotation_id"] != 18]
    new, created = store.write(tasks, changed, **kw)
    assert created and new.id != old.id
    diff = diff_snapshots(old, new)
    assert diff.summary() == {"annotations_added": 0, "annotations_removed": 1, "annotations_changed": 1,
                              "tasks_added": 0, "tasks_removed": 0}
    assert diff.changed.loc[0, "annotation_id"] == 10
    assert list(store.history()["snapshot_id"]) == [new.id, old.id]
