"""Data Manager helpers: filters (a tab's `filters`, or a task listing's `query`) and the columns the studio's tabs
hide. Plain dicts in Label Studio's Data Manager format; no HTTP here (that is studio/labelstudio/client.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from studio.errors import LabelStudioError, did_you_mean

def dm_item(column: str, operator: str, type_: str, value: Any) -> dict[str, Any]:
    """One Data Manager filter item. column: "tasks:<field>" (e.g. "tasks:predictions_model_versions"; the
    "filter:" prefix Label Studio wants is added here); operator: "contains", "greater", "less", ...;
    type_: the column's Data Manager type ("List", "Datetime", "Number", "String", ...)."""
    return {"filter": column if column.startswith("filter:") else f"filter:{column}", "operator": operator,
            "type": type_, "value": value}


def dm_filters(*items: dict[str, Any], conjunction: str = "and") -> dict[str, Any]:
    """Data Manager filters from `dm_item`s: every item must hold ("and") or any one of them ("or")."""
    if conjunction not in ("and", "or"):
        raise LabelStudioError(f"Data Manager filters got conjunction={conjunction!r}; expected 'and' or 'or'."
                               f"{did_you_mean(conjunction, ('and', 'or'))}")
    return {"conjunction": conjunction, "items": list(items)}


def _updated_query(after: datetime, until: datetime | None = None) -> dict[str, Any]:
    """A Data Manager filter on tasks.updated_at: after < updated_at (<= until)."""
    def stamp(moment: datetime) -> str:
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # the only format accepted

    items = [dm_item("tasks:updated_at", "greater", "Datetime", stamp(after))]
    if until is not None:
        items.append(dm_item("tasks:updated_at", "less", "Datetime", stamp(until + timedelta(microseconds=1))))
    return {"filters": dm_filters(*items)}



#: Data Manager columns the studio's tabs hide (label_studio/data_manager/functions.py names them).
_BOOKKEEPING = [f"tasks:{c}" for c in ("inner_id", "annotations_ids", "annotations_results", "predictions_results",
                                       "predictions_model_versions", "total_predictions", "file_upload",
                                       "storage_filename", "created_at", "updated_at", "updated_by", "avg_lead_time",
                                       "draft_exists", "cancelled_annotations")]
