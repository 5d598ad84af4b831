"""The task-kind contract, one shared test run against every kind, plus each kind's own rules."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from studio.balance import rebalance
from studio.curate import split_dataset, split_counts
from studio.errors import DataError, UnsupportedTaskKind
from studio.export import export_curated
from studio.records import annotations_frame, labeled_view, problems, tasks_frame, validation_report
from studio.spans import word_offsets
from studio.tasks import KINDS, STAGES, kind_named

TYPES = ["person", "location"]
WORDS = ["Alice", "Bob", "Paris", "Rome", "today", "went", "to", "met", "in", "and"]


def _sentence(i: int) -> tuple[str, list[dict]]:
    """A seeded sentence with a person and, every other time, a location."""
    person, place = ["Alice", "Bob", "Carol"][i % 3], ["Paris", "Rome"][i % 2]
    text = f"{person} went to {place} on day {i}" if i % 2 else f"{person} stayed home on day {i}"
    spans = [{"start": 0, "end": len(person), "label": "person", "text": person}]
    if i % 2:
        start = text.index(place)
        spans.append({"start": start, "end": start + len(place), "label": "location", "text": place})
    return text, spans


def _targets(name: str, n: int) -> tuple[list[str], list]:
    texts = [_sentence(i)[0] for i in range(n)]
    if name == "single_label":
        return texts, [TYPES[i % 2] for i in range(n)]
    if name == "multi_label":
        return texts, [TYPES[: 1 + i % 2] if i % 3 else [TYPES[1]] for i in range(n)]
    if name == "generation":
        return texts, [f"Answer {i}: please go to the {['desk', 'site'][i % 2]}." for i in range(n)]
    return texts, [_sentence(i)[1] for i in range(n)]


def _records(kind, texts: list[str], targets: list, *, second: dict[int, object] | None = None) -> list[dict]:
    """Label Studio export records: each task annotated by user 1 with its target (and by user 2 where given)."""
    records = []
    for i, (text, target) in enumerate(zip(texts, targets)):
        annotations = [{"id": 10 * i + 1, "completed_by": 1, "result": kind.result(target),
                        "updated_at": f"2026-01-01T00:00:{i % 60:02d}"}]
        if second and i in second:
            annotations.append({"id": 10 * i + 2, "completed_by": 2, "result": kind.result(second[i]),
                                "updated_at": f"2026-01-01T00:01:{i % 60:02d}"})
        records.append({"id": i + 1, "data": {"text": text}, "annotations": annotations})
    return records


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_keeps_the_contract_from_annotation_to_export(name, tmp_path):
    kind = kind_named(name, TYPES)
    texts, targets = _targets(name, 40)
    records = _records(kind, texts, targets, second={0: targets[0], 1: targets[1]})
    users = {1: "ann@x", 2: "bob@x"}
    tasks = tasks_frame(records, kind.schema)
    annotations = annotations_frame(records, kind.schema, users)

    # annotation -> target round-trips through a Label Studio result, for every task
    view = labeled_view(tasks, annotations, kind.schema)
    assert list(view.columns[:3]) == ["task_id", "text", kind.target_column]
    assert len(view) == 40
    assert [kind.key(t) for t in view[kind.target_column]] == [kind.key(t) for t in targets]
    assert view.set_index("task_id").loc[1, "n_annotators"] == 2 and view["agreement"].between(0, 1).all()
    report = validation_report(tasks, annotations, kind.schema)
    assert set(report["problem"]) <= set(problems(kind.schema))
    assert "disagreement" not in set(report["problem"])  # the two annotators agree

    # curate: split, counts, rebalance, export, all through the kind
    split = split_dataset(view, kind=kind, seed=0)
    assert set(split.df["split"]) == {"train", "validation", "test"}
    counts = split_counts(split.df, kind=kind)
    assert set(counts.index) <= set(TYPES)
    if name == "generation":  # no classes: nothing to rebalance on, refused rather than a no-op
        with pytest.raises(UnsupportedTaskKind, match="instruction -> response"):
            rebalance(split.df, kind=kind, method="random_over", seed=0, class_names=[])
        balanced = rebalance(split.df, kind=kind, method="none", seed=0, class_names=[])
    else:
        balanced = rebalance(split.df, kind=kind, method="random_over", seed=0, class_names=TYPES)
    assert (balanced.df["split"] == "train").sum() >= (split.df["split"] == "train").sum()
    info = export_curated(balanced.df, kind=kind, class_names=TYPES if kind.has_classes else [], out_root=tmp_path,
                          snapshot_id="s", decisions_applied={}, source_license="test")
    assert info.manifest["task"] == name
    from datasets import load_from_disk

    dataset = load_from_disk(str(info.path / "dataset"))
    assert sum(len(dataset[s]) for s in dataset) == len(balanced.df)
    assert kind.hf_task_category in (info.path / "README.md").read_text()

    # import cell -> target, and a model's output -> targets + probabilities the strategies rank
    assert kind.import_target(None, texts[0], row=1) is None
    if name == "spans":
        output = [np.tile(np.eye(len(kind.tag_names))[0], (len(word_offsets(t)), 1)) for t in texts[:3]]
    elif name == "generation":
        output = (["a draft"] * 3, [-0.1, -1.0, -3.0])
    else:
        output = np.full((3, len(TYPES)), 0.5)
    predicted, probs = kind.from_output(output, texts[:3])
    assert len(predicted) == 3 and probs.shape[0] == 3 and np.allclose(probs.sum(axis=1), 1.0)


@pytest.mark.parametrize("name", list(KINDS))
def test_a_stage_a_kind_does_not_support_refuses_with_a_message(name):
    kind = kind_named(name, TYPES)
    unsupported = [s for s in STAGES if not kind.supports(s)]
    for stage in unsupported:
        with pytest.raises(UnsupportedTaskKind, match=kind.name):
            kind.require(stage)
    for stage in kind.stages:
        kind.require(stage)  # no error


def test_multi_label_quality_is_refused_not_guessed():
    kind = kind_named("multi_label", TYPES)
    with pytest.raises(UnsupportedTaskKind, match="multi-label classification"):
        kind.require("quality", what="The label-quality checks")


def test_spans_two_annotators_disagree_and_a_tie_keeps_only_shared_spans():
    kind = kind_named("spans", TYPES)
    text, spans = _sentence(1)  # "Bob went to Rome on day 1": person + location
    records = _records(kind, [text], [spans], second={0: spans[:1]})  # the second annotator missed Rome
    tasks = tasks_frame(records, kind.schema)
    annotations = annotations_frame(records, kind.schema, {1: "a@x", 2: "b@x"})
    view = labeled_view(tasks, annotations, kind.schema)
    assert [s["text"] for s in view.loc[0, "spans"]] == ["Bob"]  # only the span both marked
    assert view.loc[0, "agreement"] == 0.5
    report = validation_report(tasks, annotations, kind.schema)
    assert report["problem"].tolist() == ["disagreement"]
    assert "Rome/location" in report.loc[0, "detail"]


def test_spans_no_entities_is_an_answer_and_bad_spans_are_reported():
    kind = kind_named("spans", TYPES)
    text = "nothing to see here"
    bad = [{"start": 0, "end": 99, "label": "person"}, {"start": 0, "end": 7, "label": "planet"}]
    records = [{"id": 1, "data": {"text": text}, "annotations": [{"id": 1, "completed_by": 1, "result": []}]},
               {"id": 2, "data": {"text": text}, "annotations": [
                   {"id": 2, "completed_by": 1,
                    "result": [{"from_name": "label", "to_name": "text", "type": "labels",
                                "value": {"start": s["start"], "end": s["end"], "labels": [s["label"]]}}
                               for s in bad]}]}]
    tasks = tasks_frame(records, kind.schema)
    annotations = annotations_frame(records, kind.schema, {1: "a@x"})
    view = labeled_view(tasks, annotations, kind.schema).set_index("task_id")
    assert view.loc[1, "spans"] == []              # "no entities" is a valid label, kept
    assert view.loc[2, "spans"] == []              # both spans unusable: listed below, not guessed
    found = set(validation_report(tasks, annotations, kind.schema)["problem"])
    assert {"span_outside_text", "unknown_entity_type"} <= found


def test_spans_export_has_bio_tags_aligned_to_words(tmp_path):
    kind = kind_named("spans", TYPES)
    text, spans = _sentence(1)
    frame = pd.DataFrame({"task_id": [1, 2, 3], "text": [text] * 3, "spans": [spans] * 3,
                          "split": ["train", "validation", "test"]})
    info = export_curated(frame, kind=kind, class_names=TYPES, out_root=tmp_path, snapshot_id="s",
                          decisions_applied={}, source_license="test")
    train = pd.read_parquet(info.path / "train.parquet")
    tags = [info.manifest["tag_names"][i] for i in train.loc[0, "ner_tags"]]
    assert list(train.loc[0, "tokens"]) == ["Bob", "went", "to", "Rome", "on", "day", "1"]
    assert tags == ["B-person", "O", "O", "B-location", "O", "O", "O"]
    assert info.manifest["counts"]["train"] == {"person": 1, "location": 1}
    lines = (info.path / "train.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["spans"][1]["text"] == "Rome"


def test_a_span_correction_must_be_spans_of_known_types():
    kind = kind_named("spans", TYPES)
    assert kind.decision_target('[{"start": 0, "end": 3, "label": "person"}]')[0]["label"] == "person"
    with pytest.raises(DataError, match="unknown types"):
        kind.decision_target('[{"start": 0, "end": 3, "label": "planet"}]')
    with pytest.raises(DataError, match="JSON list of spans"):
        kind.decision_target("not json")


def test_single_label_import_refuses_a_list_of_labels():
    kind = kind_named("single_label", TYPES)
    with pytest.raises(DataError, match="row 3 has 2 labels"):
        kind.import_target(["person", "location"], "x", row=3)


def test_an_ner_config_without_entity_types_is_refused():
    from studio.errors import LabelingConfigError
    from studio.labeling import parse_labeling_config, with_choices

    empty = '<View><Labels name="ents" toName="text"></Labels><Text name="text" value="$text"/></View>'
    with pytest.raises(LabelingConfigError, match="no entity types"):
        parse_labeling_config(empty)
    filled = parse_labeling_config(with_choices(empty, ["person"]))  # a template filled from the data is fine
    assert filled.classes == ("person",) and filled.kind.name == "spans"


def test_snapshot_lists_every_annotators_spans_in_long_form(tmp_path):
    from studio.snapshot import SnapshotStore

    kind = kind_named("spans", TYPES)
    text, spans = _sentence(1)
    records = _records(kind, [text, "no entities here"], [spans, []], second={0: spans[:1]})
    store = SnapshotStore(tmp_path)
    snapshot, _ = store.write(tasks_frame(records, kind.schema),
                              annotations_frame(records, kind.schema, {1: "a@x", 2: "b@x"}),
                              schema=kind.schema, project_id=1, project_title="ner", source_url="http://x")
    long = snapshot.spans()
    assert long[["annotator", "text", "label"]].values.tolist() == [
        ["a@x", "Bob", "person"], ["a@x", "Rome", "location"], ["b@x", "Bob", "person"]]
    assert set(snapshot.labeled()["task_id"]) == {1, 2}  # "no entities" is a labeled task
