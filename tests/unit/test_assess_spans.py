"""The span quality report of a snapshot, end to end offline: real encoder, fast token learner, stored and read back."""

from __future__ import annotations

import pytest

from studio.config import PathsConfig, StudioConfig
from studio.errors import EmptyDataError
from studio.records import annotations_frame, tasks_frame
from studio.snapshot import SnapshotStore
from studio.tasks import kind_named
from studio.workspace import Workspace

PEOPLE = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank"]
PLACES = ["Paris", "Rome", "Berlin", "Madrid", "Oslo", "Vienna"]


def _records(kind, n: int = 48):
    records = []
    for i in range(n):
        person, place = PEOPLE[i % 6], PLACES[(i // 6) % 6]
        text = f"{person} flew to {place} last week"
        spans = [{"start": 0, "end": len(person), "label": "person"},
                 {"start": text.index(place), "end": text.index(place) + len(place), "label": "location"}]
        if i == 7:  # a planted error: the place labeled as a person
            spans[1] = {**spans[1], "label": "person"}
        annotations = [{"id": 10 * i + 1, "completed_by": 1, "result": kind.result(spans)}]
        if i < 6:  # a second annotator on a few tasks, who misses the place once
            annotations.append({"id": 10 * i + 2, "completed_by": 2,
                                "result": kind.result(spans if i else spans[:1])})
        records.append({"id": i + 1, "data": {"text": text}, "annotations": annotations})
    return records


@pytest.fixture
def ws_and_snapshot(tmp_path):
    kind = kind_named("spans", ["person", "location"])
    records = _records(kind)
    store = SnapshotStore(tmp_path / "state" / "projects" / "intents" / "snapshots")
    snapshot, _ = store.write(tasks_frame(records, kind.schema),
                              annotations_frame(records, kind.schema, {1: "ann@x", 2: "bob@x"}),
                              schema=kind.schema, project_id=1, project_title="ner", source_url="http://x")
    ws = Workspace(StudioConfig(root=tmp_path, paths=PathsConfig(state_dir=str(tmp_path / "state"))))
    return ws, snapshot


def test_span_quality_report_flags_the_planted_error_and_is_stored(ws_and_snapshot):
    ws, snapshot = ws_and_snapshot
    report = ws.quality.assess(snapshot)
    sentences = report.sentences.set_index("task_id")
    assert len(sentences) == 48 and sentences["score"].between(0, 1).all()
    # the planted error (task 8) is among the lowest-scored tasks, by the studio's score and by cleanlab's
    assert 8 in set(report.sentences.nsmallest(5, "score")["task_id"])
    assert {"all", "person", "location"} <= set(report.agreement["type"])
    assert report.agreement.set_index("type").loc["location", "exact_f1"] < 1.0  # the second annotator's miss
    assert set(report.annotators["annotator"]) == {"ann@x", "bob@x"}
    again = ws.quality.assessment(snapshot)  # read back as a page reload would
    assert again is not None and again.sentences["task_id"].tolist() == report.sentences["task_id"].tolist()
    assert again.sentences.set_index("task_id").loc[8, "given_spans"][1]["label"] == "person"


def test_too_few_labeled_texts_is_a_clear_error(tmp_path):
    kind = kind_named("spans", ["person", "location"])
    records = _records(kind, n=3)
    store = SnapshotStore(tmp_path / "state" / "projects" / "intents" / "snapshots")
    snapshot, _ = store.write(tasks_frame(records, kind.schema), annotations_frame(records, kind.schema, {}),
                              schema=kind.schema, project_id=1, project_title="ner", source_url="http://x")
    ws = Workspace(StudioConfig(root=tmp_path, paths=PathsConfig(state_dir=str(tmp_path / "state"))))
    with pytest.raises(EmptyDataError, match="need at least"):
        ws.quality.assess(snapshot)


def test_cli_summary_and_auto_fix_on_a_spans_project(ws_and_snapshot, capsys):
    from studio.cli.quality import _span_quality_summary
    from studio.errors import UnsupportedTaskKind

    ws, snapshot = ws_and_snapshot
    report = ws.quality.assess(snapshot)
    assert _span_quality_summary(ws, snapshot, report, None) == 0
    out = capsys.readouterr().out
    assert "flagged texts" in out and "plain cleanlab flags" in out and "Span agreement" in out
    with pytest.raises(UnsupportedTaskKind, match="Auto-fix relabels single-label"):
        ws.review.auto_fix(snapshot, author="lead@x", dry_run=True)


def test_fast_token_learner_scores_the_pool_and_pre_annotates(tmp_path):
    """Before any training run: active learning and the ML backend use the fast token learner on the curated spans."""
    from studio.spans import word_offsets

    kind = kind_named("spans", ["person", "location"])
    records = _records(kind)
    records += [{"id": 900 + i, "data": {"text": t}, "annotations": []}
                for i, t in enumerate(["Carol flew to Oslo last week", "Dave flew to Rome last week"])]
    store = SnapshotStore(tmp_path / "state" / "projects" / "intents" / "snapshots")
    snapshot, _ = store.write(tasks_frame(records, kind.schema), annotations_frame(records, kind.schema, {1: "a@x"}),
                              schema=kind.schema, project_id=1, project_title="ner", source_url="http://x")
    ws = Workspace(StudioConfig(root=tmp_path, paths=PathsConfig(state_dir=str(tmp_path / "state"))))
    scored = ws.active.score_pool(snapshot, n=2, strategy="margin")
    assert scored.model_version == f"fast-{snapshot.id}" and len(scored.pool) == 2
    found = {t: {(s["text"], s["label"]) for s in spans}
             for t, spans in zip(scored.pool["text"], scored.pool["target"])}
    assert found["Carol flew to Oslo last week"] == {("Carol", "person"), ("Oslo", "location")}
    assert scored.pool["confidence"].between(0, 1).all()
    model = ws.active.fast_model(snapshot)
    probs = model.predict_word_probs(["Erin flew to Berlin last week"])
    assert model.task == "spans" and probs[0].shape == (len(word_offsets("Erin flew to Berlin last week")), 5)
