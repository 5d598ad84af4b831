"""ws.review.outdated_decisions (studio/stages/review.py) across snapshots, offline: snapshots written from
hand-made export records."""

from studio.config import PathsConfig, StudioConfig
from studio.labeling import parse_labeling_config
from studio.records import annotations_frame, tasks_frame
from studio.review import Decision
from studio.workspace import Workspace

XML = ('<View><Text name="text" value="$text"/><Choices name="topic" toName="text" choice="multiple">'
       '<Choice value="card"/><Choice value="refund"/><Choice value="fees"/></Choices></View>')


def write(ws: Workspace, labels: dict[int, list[str]], stamp: str):
    schema = parse_labeling_config(XML)
    recs = [{"id": task, "data": {"text": f"text {task}"}, "annotations": [{
        "id": 100 + task, "completed_by": 1, "was_cancelled": False, "lead_time": 1.0, "created_at": stamp,
        "updated_at": stamp, "result": [{"from_name": "topic", "to_name": "text", "type": "choices",
                                         "value": {"choices": chosen}}]}]} for task, chosen in labels.items()]
    snapshot, _ = ws.store.write(tasks_frame(recs, schema), annotations_frame(recs, schema, {1: "ann@x"}),
                                 schema=schema, project_id=1, project_title="p", source_url="http://x")
    return snapshot


def test_multi_label_decisions_compare_label_sets(tmp_path):
    ws = Workspace(StudioConfig(root=tmp_path, paths=PathsConfig(state_dir=str(tmp_path / "state"))))
    first = write(ws, {1: ["card"], 2: ["refund", "fees"]}, "2026-01-01T00:00:00Z")
    ws.decisions(1).append([Decision(1, "exclude", "lead@x", first.id), Decision(2, "keep", "lead@x", first.id)],
                           classes=first.schema.classes)
    assert ws.review.outdated_decisions(first).empty
    second = write(ws, {1: ["card", "fees"], 2: ["fees", "refund"]}, "2026-01-02T00:00:00Z")  # same set for 2
    outdated = ws.review.outdated_decisions(second)
    assert outdated[["task_id", "label_then", "label_now"]].to_dict("list") == {
        "task_id": [1], "label_then": ["card"], "label_now": ["card, fees"]}
    assert ws.review.resolve_outdated(second, author="lead@x", confirm=True) == 1
    assert ws.review.outdated_decisions(second).empty
