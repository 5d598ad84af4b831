"""Push model output back into Label Studio: predictions in bulk, and Data Manager tabs over them.

Used by the review loop ("Needs review": the quality stage's suggested labels) and by active learning
(pre-annotations with an uncertainty score). Input is a DataFrame; the client does one request per batch.
"""

from __future__ import annotations

import pandas as pd

from studio.errors import DataError
from studio.labeling import LabelingSchema
from studio.labelstudio.client import LabelStudioClient, dm_filters, dm_item
from studio.types import ProgressFn

NEEDS_REVIEW_TAB = "Needs review"


def prediction_records(rows: pd.DataFrame, schema: LabelingSchema, *, model_version: str) -> list[dict]:
    """rows: task_id, target (of the project's task kind; or `label`, a class name), score (float in [0, 1],
    lower = less certain) -> Label Studio predictions, their results written by the task kind."""
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
    return [{"task": int(task), "result": kind.result(target), "score": float(score), "model_version": model_version}
            for task, target, score in zip(rows["task_id"], targets, rows["score"])]


def push_predictions(client: LabelStudioClient, project_id: int, rows: pd.DataFrame, schema: LabelingSchema, *,
                     model_version: str, progress: ProgressFn | None = None) -> int:
    return client.import_predictions(project_id, prediction_records(rows, schema, model_version=model_version),
                                     progress=progress)


def send_for_review(client: LabelStudioClient, project_id: int, rows: pd.DataFrame, schema: LabelingSchema, *,
                    snapshot_id: str) -> tuple[pd.DataFrame, int]:
    """Give each chosen task a prediction carrying the suggested label (model_version quality-<snapshot>)
    and make a "Needs review" tab listing exactly those tasks. rows: task_id, label (suggested), score.
    A task already in the tab is not given a second, identical prediction.
    Returns (the rows sent, i.e. less those already in the tab; view id)."""
    version = f"quality-{snapshot_id}"
    filters = dm_filters(dm_item("tasks:predictions_model_versions", "contains", "List", [version]))
    view = client.upsert_view(project_id, NEEDS_REVIEW_TAB, filters=filters)
    fresh = rows[~rows["task_id"].isin(client.view_task_ids(project_id, view))]
    if len(fresh):
        push_predictions(client, project_id, fresh, schema, model_version=version)
    return fresh, view
