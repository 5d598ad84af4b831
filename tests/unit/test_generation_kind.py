"""The instruction -> response kind: its config, its targets and validation, import of pairs and chats, curation
and export in the formats TRL reads."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from studio.errors import DataError, LabelingConfigError, UnsupportedTaskKind
from studio.export import export_curated
from studio.importer import IMPORT_KEY, build_tasks, chats_to_pairs, label_column_for, text_column_for
from studio.labeling import load_labeling_config, parse_labeling_config
from studio.records import annotations_frame, labeled_view, tasks_frame, validation_report
from studio.review import Decision, DecisionLog, apply_decisions
from studio.snapshot import SnapshotStore

REPO = Path(__file__).resolve().parents[2]
SFT = load_labeling_config(REPO / "labeling_configs" / "sft.xml")


def _answer(text: str) -> list[dict]:
    return SFT.kind.result(text)


def _records(rows: list[tuple[str, list[tuple[int, str]]]]) -> list[dict]:
    """[(prompt, [(user id, answer), ...])] -> Label Studio export records (answers oldest first)."""
    out = []
    for i, (prompt, answers) in enumerate(rows, start=1):
        out.append({"id": i, "data": {"prompt": prompt, "intent": f"intent{i % 2}"}, "annotations": [
            {"id": 10 * i + j, "completed_by": user, "result": _answer(text),
             "updated_at": f"2026-01-01T00:00:{j:02d}"} for j, (user, text) in enumerate(answers)]})
    return out


def _frames(rows):
    records = _records(rows)
    return tasks_frame(records, SFT), annotations_frame(records, SFT, {1: "ann@x", 2: "bob@x"})


def test_the_sft_config_is_a_generation_project_and_a_textarea_without_a_prompt_is_refused():
    assert (SFT.task, SFT.text_field, SFT.from_name, SFT.to_name) == ("generation", "prompt", "response", "prompt")
    assert SFT.kind.name == "generation" and SFT.kind.classes == ()
    with_context = parse_labeling_config(
        '<View><Text name="ctx" value="$context"/><Text name="prompt" value="$prompt"/>'
        '<TextArea name="answer" toName="prompt"/></View>')
    assert with_context.text_field == "prompt" and with_context.context_field == "context"
    with pytest.raises(LabelingConfigError, match="no prompt to answer"):
        parse_labeling_config('<View><Text name="prompt" value="$prompt"/>'
                              '<TextArea name="answer" toName="nothing"/></View>')


def test_every_answer_is_kept_the_latest_is_the_target_and_validation_lists_bad_answers():
    long_prompt = "x" * 100_000
    tasks, annotations = _frames([
        ("How do I reset my password?", [(1, "Open Settings, then Security."), (2, "Use the reset link.")]),
        ("Cancel order 42", [(1, "   ")]),                                        # empty answer
        ("repeat me", [(1, "repeat me")]),                                        # answer = prompt
        ("Where is my refund?", [(1, "Call {{Customer Support Phone Number}}.")]),  # unfilled slot
        (long_prompt, [(1, "Too long to read.")]),
        ("bad\x07bell", [(1, "ok")]),
    ])
    view = labeled_view(tasks, annotations, SFT).set_index("task_id")
    assert view.loc[1, "response"] == "Use the reset link."   # the most recent answer
    assert view.loc[1, "n_annotators"] == 2 and view.loc[1, "agreement"] == 0.5
    assert 2 not in view.index                                   # no usable answer: listed, not guessed
    report = validation_report(tasks, annotations, SFT)
    found = dict(zip(report["task_id"], report["problem"]))
    assert found[2] == "empty_response" and found[3] == "response_equals_prompt" and found[5] == "prompt_too_long"
    assert found[6] == "control_characters"
    assert "{{Customer Support Phone Number}}" in report.loc[report["task_id"] == 4, "detail"].iloc[0]
    assert (report.loc[report["task_id"] == 1, "problem"] == "disagreement").any()


def test_a_replacement_answer_is_a_review_decision(tmp_path):
    tasks, annotations = _frames([("How do I reset my password?", [(1, "Open Settings."), (2, "Use the link.")])])
    log = DecisionLog(tmp_path, 1)
    log.append([Decision(1, "relabel", "lead@x", "s1", label="Open Settings.")], classes=(), kind=SFT.kind)
    curated = apply_decisions(labeled_view(tasks, annotations, SFT), log.read(), kind=SFT.kind)
    assert curated.loc[0, "response"] == "Open Settings."
    with pytest.raises(DataError, match="non-empty text"):
        log.append([Decision(1, "relabel", "lead@x", "s1", label="  ")], classes=(), kind=SFT.kind)


def test_snapshot_lists_every_answer_in_long_form(tmp_path):
    tasks, annotations = _frames([("Hi?", [(1, "Hello."), (2, "Hey.")]), ("Bye?", [(1, "Goodbye.")])])
    snapshot, _ = SnapshotStore(tmp_path).write(tasks, annotations, schema=SFT, project_id=1, project_title="p",
                                                source_url="http://x")
    long = snapshot.responses()
    assert long["response"].tolist() == ["Hello.", "Hey.", "Goodbye."]
    assert set(long["annotator"]) == {"ann@x", "bob@x"}


def test_import_of_pairs_and_of_chats_as_answers_or_drafts():
    table = pd.DataFrame({"instruction": ["Where is my parcel?", "Close my account"],
                          "output": ["It ships tomorrow.", ""], "intent": ["track", "delete"]})
    text_col = text_column_for(table, SFT)
    label_col = label_column_for(table, SFT)
    assert (text_col, label_col) == ("instruction", "output")
    tasks = build_tasks(table, SFT, text_column=text_col, label_column=label_col, labels_as="predictions",
                        model_version="drafts")
    data = {k: v for k, v in tasks[0]["data"].items() if k != IMPORT_KEY}
    assert data == {"prompt": "Where is my parcel?", "intent": "track"}
    assert tasks[0]["predictions"][0]["result"][0]["value"] == {"text": ["It ships tomorrow."]}
    assert "predictions" not in tasks[1]                        # an empty answer: the prompt arrives unanswered

    chats = pd.DataFrame({"messages": [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
         {"role": "assistant", "content": "Hello!"}],
        json.dumps([{"role": "user", "content": "Open hours?"}])]})
    pairs = chats_to_pairs(chats)
    assert pairs[["prompt", "response", "system"]].values.tolist() == [["Hi", "Hello!", "Be brief."],
                                                                      ["Open hours?", "", ""]]
    multi = pd.DataFrame({"messages": [[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                                        {"role": "user", "content": "c"}]]})
    with pytest.raises(DataError, match="row 1 .*user > assistant > user"):
        chats_to_pairs(multi)
    with pytest.raises(DataError, match="not text"):
        SFT.kind.import_target(b"bytes", "p", row=3)


def test_curation_exports_prompt_completion_and_messages_with_groups(tmp_path):
    from datasets import load_from_disk

    from studio.curate import split_dataset

    kind = SFT.kind
    rows = [(f"Question number {i}?", [(1, f"Answer {i}.")]) for i in range(30)]
    tasks, annotations = _frames(rows)
    view = kind.with_task_data(labeled_view(tasks, annotations, SFT), tasks, group_field="intent")
    assert set(view["group"]) == {"intent0", "intent1"} and (view["context"] == "").all()
    groups = [i // 2 for i in range(30)]                        # pairs of near-duplicate prompts
    split = split_dataset(view, kind=kind, seed=0, groups=groups).df
    assert split.groupby(pd.Series(groups))["split"].nunique().max() == 1
    with pytest.raises(UnsupportedTaskKind):
        from studio.balance import rebalance

        rebalance(split, kind=kind, method="class_weight")
    info = export_curated(split, kind=kind, class_names=[], out_root=tmp_path, snapshot_id="s",
                          decisions_applied={}, source_license="CDLA-Sharing-1.0")
    train = pd.read_parquet(info.path / "train.parquet")
    assert {"task_id", "text", "prompt", "completion", "messages", "group"} <= set(train.columns)
    first = train.iloc[0]
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert first["messages"][1]["content"] == first["completion"]
    dataset = load_from_disk(str(info.path / "dataset"))
    assert sum(len(dataset[s]) for s in dataset) == 30
    card = (info.path / "README.md").read_text()
    assert "text-generation" in card and "Rows per split and group" in card
    assert info.manifest["rows"]["train"] == len(train)


def _hash_embed(texts):
    """A cheap deterministic embedder: bag of hashed words, L2-normalised."""
    import numpy as np

    out = np.zeros((len(texts), 64))
    for i, text in enumerate(texts):
        for word in str(text).lower().split():
            out[i, hash(word) % 64] += 1.0
    out[out.sum(axis=1) == 0, 0] = 1.0
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_the_quality_report_flags_duplicates_and_is_stored(tmp_path):
    from studio.assess_generation import GenerationAssessment, build_generation_assessment

    rows = [(f"How do I change my delivery address for parcel {i}?", [(1, f"Open Orders, pick parcel {i}, then "
             "Change address; the courier is told at once and you get an e-mail.")]) for i in range(40)]
    rows.append(("How do I change my delivery address for parcel 0?", [(1, "Call us."), (2, "No idea, sorry.")]))
    tasks, annotations = _frames(rows)
    snapshot, _ = SnapshotStore(tmp_path / "s").write(tasks, annotations, schema=SFT, project_id=1,
                                                      project_title="p", source_url="http://x")
    report = build_generation_assessment(snapshot, _hash_embed)
    assert "exact_duplicate_prompt" in set(report.issues["check"])
    flagged = report.flagged("exact_duplicate_prompt")
    assert {1, 41} <= set(flagged["task_id"])
    last = report.tasks.set_index("task_id").loc[41]
    assert last["n_answers"] == 2 and last["response"] == "No idea, sorry."
    report.save(tmp_path / "q")
    loaded = GenerationAssessment.load(tmp_path / "q", snapshot.id)
    assert len(loaded.issues) == len(report.issues) and list(loaded.tasks.iloc[0]["answers"][0]) == [
        "annotator", "response"]
