"""ws.active.score_pool picks its model by [active] scorer: the fast learner, a cold start, or a clear error.

Offline: a snapshot written from hand-made export records, the packaged encoder, no Label Studio."""

import pytest

from studio.config import PathsConfig, StudioConfig
from studio.errors import EmptyDataError
from studio.labeling import parse_labeling_config
from studio.records import annotations_frame, tasks_frame
from studio.snapshot import SnapshotStore
from studio.workspace import Workspace

XML = ('<View><Text name="text" value="$text"/><Choices name="intent" toName="text">'
       '<Choice value="card"/><Choice value="refund"/><Choice value="other"/></Choices></View>')
CARD = ["my card is lost", "card stolen yesterday", "new card please", "card not arriving", "block my card"]
REFUND = ["I want a refund", "refund my payment", "money back please", "refund has not arrived", "return refund"]


def ann(aid: int, label: str) -> dict:
    return {"id": aid, "completed_by": 1, "was_cancelled": False, "lead_time": 1.0,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "result": [{"from_name": "intent", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]}


def snapshot_of(tmp_path, labeled: list[tuple[str, str]], pool: list[str]):
    schema = parse_labeling_config(XML)
    recs = [{"id": i + 1, "data": {"text": t}, "annotations": [ann(100 + i, label)]}
            for i, (t, label) in enumerate(labeled)]
    recs += [{"id": 500 + i, "data": {"text": t}, "annotations": []} for i, t in enumerate(pool)]
    store = SnapshotStore(tmp_path / "snapshots")
    snap, _ = store.write(tasks_frame(recs, schema), annotations_frame(recs, schema, {1: "ann@x"}), schema=schema,
                          project_id=1, project_title="p", source_url="http://x")
    return snap


@pytest.fixture
def ws(tmp_path):
    return Workspace(StudioConfig(root=tmp_path, paths=PathsConfig(state_dir=str(tmp_path / "state"))))


def test_fast_learner_scores_the_pool_and_names_its_version(ws, tmp_path):
    labeled = [(t, "card") for t in CARD[:3]] + [(t, "refund") for t in REFUND[:3]]
    snap = snapshot_of(tmp_path, labeled, CARD[3:] + REFUND[3:])
    scored = ws.active.score_pool(snap, n=2)  # scorer "auto" and no training run: the fast learner
    assert scored.model_version == f"fast-{snap.id}"
    assert len(scored.batch) == 2 and set(scored.pool["label"]) <= {"card", "refund", "other"}
    assert scored.pool["confidence"].between(0, 1).all()


def test_run_only_without_a_run_is_a_cold_start_and_fast_needs_two_classes(ws, tmp_path):
    snap = snapshot_of(tmp_path, [(t, "card") for t in CARD[:3]], REFUND)
    assert ws.active.score_pool(snap, n=2, scorer="run").model_version is None
    assert ws.active.score_pool(snap, n=2).model_version is None  # auto: one labeled class, nothing to learn yet
    with pytest.raises(EmptyDataError, match="at least two classes"):
        ws.active.score_pool(snap, n=2, scorer="fast")


def test_train_on_current_labels_falls_back_to_the_stored_snapshot_when_label_studio_is_down(tmp_path):
    """The Train page, `studio train` and the ML backend share ws.training.training_snapshot."""
    import socket

    from studio.config import LabelStudioConfig
    from studio.errors import LabelStudioUnreachable

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = StudioConfig(root=tmp_path, paths=PathsConfig(state_dir=str(tmp_path / "state")),
                       labelstudio=LabelStudioConfig(url=f"http://127.0.0.1:{port}", token="t", project_title="p"))
    ws = Workspace(cfg)
    with pytest.raises(LabelStudioUnreachable):  # nothing stored yet: the real error, not a guess
        ws.training.training_snapshot()
    snap = snapshot_of(ws.project_dir, [(CARD[0], "card"), (REFUND[0], "refund")], [])
    chosen, note = ws.training.training_snapshot()
    assert chosen.id == snap.id and "training on the newest snapshot" in note and snap.id in note
