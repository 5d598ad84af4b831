"""Label Studio export records -> the snapshot's tables, the validation report, and the labeled view.

Pure functions: lists of dicts / DataFrames in, DataFrames out. Nothing is dropped: every annotation of every
annotator is a row, and whatever the later stages cannot use is listed in the validation report with why.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

import pandas as pd

from studio.labeling import LabelingSchema
from studio.tasks import usable_votes

TASK_COLUMNS = ["task_id", "inner_id", "text", "data", "created_at", "updated_at"]
ANNOTATION_COLUMNS = ["annotation_id", "task_id", "annotator_id", "annotator", "labels", "result",
                      "was_cancelled", "ground_truth", "lead_time", "created_at", "updated_at"]
REPORT_COLUMNS = ["task_id", "annotation_id", "problem", "detail"]

#: Problems the validation report lists for every task kind, and what each means; each kind adds its own
#: (TaskKind.problems: unknown or missing labels, spans outside the text, ...).
PROBLEMS = {
    "empty_text": "the task's text field is missing or blank; it cannot be used for training",
    "cancelled": "the annotator skipped the task (cancelled annotation)",
    "disagreement": "annotators of this task chose different labels",
}


def problems(schema: LabelingSchema) -> dict[str, str]:
    """Every problem the validation report can list for this project's kind, and what it means."""
    return {**PROBLEMS, **schema.kind.problems}


def tasks_frame(records: Iterable[dict[str, Any]], schema: LabelingSchema) -> pd.DataFrame:
    """One row per task. `text` is the config's text field ("" when missing); `data` keeps the whole task
    data as JSON so nothing the task carried is lost."""
    rows = []
    for r in records:
        data = r.get("data") or {}
        text = data.get(schema.text_field)
        rows.append({
            "task_id": int(r["id"]),
            "inner_id": int(r.get("inner_id") or 0),
            "text": "" if text is None else str(text),
            "data": json.dumps(data, sort_keys=True, ensure_ascii=False),
            "created_at": r.get("created_at") or "",
            "updated_at": r.get("updated_at") or "",
        })
    frame = pd.DataFrame(rows, columns=TASK_COLUMNS)
    return frame.astype({"task_id": "int64", "inner_id": "int64"}).sort_values("task_id", ignore_index=True)


def annotations_frame(records: Iterable[dict[str, Any]], schema: LabelingSchema,
                      users: dict[int, str]) -> pd.DataFrame:
    """Annotations in long form: one row per annotation, every annotator, cancelled ones included.

    labels: the labels chosen for the config's classification tag (a list; empty when none).
    result: the raw Label Studio result as JSON, so spans and other tags survive untouched.
    annotator: the annotator's Label Studio identity (email), from `users` (id -> email).
    """
    rows = []
    for r in records:
        for a in r.get("annotations") or []:
            completed_by = a.get("completed_by")
            if isinstance(completed_by, dict):  # some export paths expand the user
                completed_by = completed_by.get("id")
            annotator_id = int(completed_by) if completed_by is not None else -1
            rows.append({
                "annotation_id": int(a["id"]),
                "task_id": int(r["id"]),
                "annotator_id": annotator_id,
                "annotator": users.get(annotator_id, f"user-{annotator_id}"),
                "labels": schema.labels_from_result(a.get("result") or []),
                "result": json.dumps(a.get("result") or [], sort_keys=True, ensure_ascii=False),
                "was_cancelled": bool(a.get("was_cancelled")),
                "ground_truth": bool(a.get("ground_truth")),
                "lead_time": float(a["lead_time"]) if a.get("lead_time") is not None else float("nan"),
                "created_at": a.get("created_at") or "",
                "updated_at": a.get("updated_at") or "",
            })
    frame = pd.DataFrame(rows, columns=ANNOTATION_COLUMNS)
    frame = frame.astype({"annotation_id": "int64", "task_id": "int64", "annotator_id": "int64",
                          "was_cancelled": "bool", "ground_truth": "bool", "lead_time": "float64"})
    return frame.sort_values("annotation_id", ignore_index=True)


def validation_report(tasks: pd.DataFrame, annotations: pd.DataFrame, schema: LabelingSchema) -> pd.DataFrame:
    """Everything later stages cannot use as is, one row per (task, annotation, problem); see `problems`.

    The kind checks each submitted annotation (unknown labels, spans outside the text, ...) and says whether
    the usable answers of a task's annotators disagree."""
    kind = schema.kind
    rows: list[dict[str, Any]] = []
    for task_id in tasks.loc[tasks["text"].str.strip() == "", "task_id"]:
        rows.append({"task_id": int(task_id), "annotation_id": None, "problem": "empty_text",
                     "detail": f"field '{schema.text_field}' is empty or missing"})
    text = tasks.set_index("task_id")["text"]
    for a in annotations.itertuples(index=False):
        if a.was_cancelled:
            rows.append({"task_id": a.task_id, "annotation_id": a.annotation_id, "problem": "cancelled",
                         "detail": f"skipped by {a.annotator}"})
            continue
        found = kind.annotation_problems(list(a.labels), json.loads(a.result or "[]"), text.get(a.task_id, ""))
        for problem, detail in found:
            rows.append({"task_id": a.task_id, "annotation_id": a.annotation_id, "problem": problem,
                         "detail": f"{a.annotator}: {detail}"})
    for task_id, votes in usable_votes(kind, tasks, annotations).items():
        if kind.disagree(votes):
            detail = "; ".join(f"{who}: {kind.target_text(target)}" for who, target in votes)
            rows.append({"task_id": task_id, "annotation_id": None, "problem": "disagreement", "detail": detail})
    report = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    report["annotation_id"] = report["annotation_id"].astype("Int64")
    return report.sort_values(["problem", "task_id"], ignore_index=True)


def labeled_view(tasks: pd.DataFrame, annotations: pd.DataFrame, schema: LabelingSchema) -> pd.DataFrame:
    """One row per task with a usable answer: task_id, text, the kind's target column (`label`, `labels` or
    `spans`), n_annotators, agreement (share of annotators whose answer equals the combined one), annotators.

    The kind combines the annotators' answers (single-label: the majority, a tie to the most recent). Tasks with
    empty text, or only cancelled / unusable annotations, are left out here and listed in the validation
    report instead.
    """
    kind = schema.kind
    text = tasks.set_index("task_id")["text"]
    rows = []
    for task_id, task_votes in usable_votes(kind, tasks, annotations).items():
        if not text[task_id].strip():
            continue
        target, agreement = kind.combine(task_votes)
        rows.append({"task_id": task_id, "text": text[task_id], kind.target_column: target,
                     "n_annotators": len(task_votes), "agreement": agreement,
                     "annotators": [who for who, _ in task_votes]})
    columns = ["task_id", "text", kind.target_column, "n_annotators", "agreement", "annotators"]
    return pd.DataFrame(rows, columns=columns).sort_values("task_id", ignore_index=True)


def unlabeled_view(tasks: pd.DataFrame, annotations: pd.DataFrame) -> pd.DataFrame:
    """Tasks with text and no submitted (non-cancelled) annotation: the active-learning pool."""
    done = set(annotations.loc[~annotations["was_cancelled"], "task_id"])
    mask = ~tasks["task_id"].isin(done) & (tasks["text"].str.strip() != "")
    return tasks.loc[mask, ["task_id", "text"]].reset_index(drop=True)
