"""Push model output back into Label Studio: predictions in bulk, and Data Manager tabs over them.

Used by the review loop ("Needs review": the quality stage's suggested labels) and by active learning
(studio/pool.py: the queue order in the score, the model's probability on the result, no answer where the model
is unsure). Input is a DataFrame; the client does one request per batch.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from studio.errors import DataError
from studio.labeling import LabelingSchema
from studio.labelstudio.client import LabelStudioClient, dm_filters, dm_item
from studio.tasks import TaskKind
from studio.types import ProgressFn

NEEDS_REVIEW_TAB = "Needs review"


def prediction_records(rows: pd.DataFrame, schema: LabelingSchema, *, model_version: str) -> list[dict]:
    """rows -> Label Studio predictions, their results written by the task kind.

    rows: task_id; target (of the project's task kind; or `label`, a class name); score (float, the prediction's
    `score`: what Label Studio's uncertainty sampling and the Data Manager order by, ascending, and what its editor
    shows as a percentage beside the model version). Optional columns:
    - result_score: (float in [0, 1]) the model's probability of its answer, written as the `score` of every result
      item that has none of its own (a span keeps its own; Label Studio shows a region's score in its Regions list).
    - preselect: (bool) False = the prediction carries no answer (an empty result): it orders the task but nothing
      is pre-selected in the editor. Missing = True for every row.
    """
    kind = schema.kind
    column = "target" if "target" in rows.columns else "label"
    missing = {"task_id", column, "score"} - set(rows.columns)
    if missing:
        raise DataError(f"Predictions need columns task_id, target (or label), score; missing {sorted(missing)}.")
    targets = rows[column].tolist()
    unknown = sorted({c for row in kind.row_classes(pd.Series(targets, dtype=object)) for c in row}
                     - set(schema.classes))
    if unknown:
        raise DataError(f"Predicted labels not in the labeling config: {unknown[:5]}.",
                        hint="the model's classes must match the project's; retrain on the current config")
    n = len(rows)
    preselect = rows["preselect"].astype(bool).tolist() if "preselect" in rows.columns else [True] * n
    answer_scores = rows["result_score"].tolist() if "result_score" in rows.columns else [None] * n
    return [{"task": int(task), "result": prediction_result(kind, target, probability=answer_score, preselect=show),
             "score": float(score), "model_version": model_version}
            for task, target, score, show, answer_score in zip(rows["task_id"], targets, rows["score"], preselect,
                                                               answer_scores)]


def prediction_result(kind: TaskKind, target: Any, *, probability: float | None = None,
                      preselect: bool = True) -> list[dict]:
    """A prediction's `result`: the kind's result for target, each item without a score of its own given
    `probability` (None: none added); [] when not `preselect` (the prediction then only orders the task)."""
    if not preselect:
        return []
    result = kind.result(target)
    if probability is None or pd.isna(probability):
        return result
    return [item if "score" in item else {**item, "score": float(probability)} for item in result]


def push_predictions(client: LabelStudioClient, project_id: int, rows: pd.DataFrame, schema: LabelingSchema, *,
                     model_version: str, progress: ProgressFn | None = None) -> int:
    return client.import_predictions(project_id, prediction_records(rows, schema, model_version=model_version),
                                     progress=progress)


def send_for_review(client: LabelStudioClient, project_id: int, rows: pd.DataFrame, schema: LabelingSchema, *,
                    snapshot_id: str) -> tuple[pd.DataFrame, int]:
    """Give each chosen task a prediction carrying the suggested label (model_version quality-<snapshot>), make a
    "Needs review" tab listing exactly those tasks, and ask for one more annotation of each, so that Label Studio's
    own stream ("Label all tasks") serves them to an annotator who has not labeled them yet. rows: task_id, label
    (suggested), score.
    A task already in the tab is not given a second, identical prediction.
    Returns (the rows sent, i.e. less those already in the tab; view id)."""
    version = f"quality-{snapshot_id}"
    filters = dm_filters(dm_item("tasks:predictions_model_versions", "contains", "List", [version]))
    view = client.upsert_view(project_id, NEEDS_REVIEW_TAB, filters=filters)
    fresh = rows[~rows["task_id"].isin(client.view_task_ids(project_id, view))]
    if len(fresh):
        push_predictions(client, project_id, fresh, schema, model_version=version)
        # A labeled task is never served again by itself: one more annotation wanted puts it back in the stream.
        for task in fresh["task_id"]:
            client.ask_another_annotator(int(task))
    return fresh, view
