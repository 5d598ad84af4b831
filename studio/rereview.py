"""Re-review in Label Studio: which tasks went to the "Needs review" tab, with which suggestion, and what the
annotators did with them.

Each send appends one JSON line per task to <state>/review_requests/project-<id>.jsonl: the task, the suggested
label its `quality-<snapshot>` prediction carries, the label it had then, the model's probability of the
suggestion, and the snapshot the request was made on. A later snapshot tells what came back: an annotation of
the task that is new, or was edited, since that snapshot is a review, and its label says whether the reviewer took
the suggestion. Nothing here compares clocks: "since" means "not in the request's snapshot as it is now".
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Collection

import pandas as pd

REQUEST_COLUMNS = ["task_id", "suggested_label", "given_label", "confidence", "snapshot_id", "sent_at"]
OUTCOME_COLUMNS = [*REQUEST_COLUMNS, "outcome", "new_label", "reviewed_by"]
WAITING, TOOK, KEPT, OTHER, GONE = "waiting", "took the suggestion", "kept the label", "another label", "task deleted"
OUTCOMES = (WAITING, TOOK, KEPT, OTHER, GONE)


class RequestLog:
    """Append-only JSONL of the tasks sent for re-review, one project: <state>/review_requests/project-<id>.jsonl."""

    def __init__(self, folder: str | Path, project_id: int) -> None:
        self.file = Path(folder) / f"project-{project_id}.jsonl"

    def append(self, rows: pd.DataFrame, *, snapshot_id: str) -> None:
        """rows: task_id and, where known, suggested_label, given_label, confidence (studio.review.review_requests)."""
        from studio.atomic import append_lines

        sent_at = datetime.now(timezone.utc).isoformat()
        lines = []
        for r in rows.to_dict("records"):
            confidence = r.get("confidence")
            lines.append(json.dumps({
                "task_id": int(r["task_id"]), "suggested_label": str(r.get("suggested_label") or ""),
                "given_label": str(r.get("given_label") or ""),
                "confidence": None if confidence is None or pd.isna(confidence) else float(confidence),
                "snapshot_id": snapshot_id, "sent_at": sent_at}))
        append_lines(self.file, lines)

    def read(self) -> pd.DataFrame:
        """Every request, in order; damaged lines are left out and named in a warning (studio.atomic)."""
        from studio.atomic import read_log_lines

        return pd.DataFrame(read_log_lines(self.file).rows, columns=REQUEST_COLUMNS)


def rereview_outcomes(requests: pd.DataFrame, annotations_at: Callable[[str], pd.DataFrame | None],
                      annotations_now: pd.DataFrame, task_ids_now: Collection[int]) -> pd.DataFrame:
    """The newest request per task, with what came back (OUTCOME_COLUMNS).

    annotations_at(snapshot id): that snapshot's annotation table (None if it is gone: every annotation then
    counts as not seen before); annotations_now, task_ids_now: the current snapshot's. A review = the task's newest
    annotation, not cancelled, whose (annotation_id, updated_at) the request's snapshot does not hold. outcome:
    WAITING (no review yet), TOOK (its first label is the suggestion), KEPT (the label the task had), OTHER, or
    GONE (the task is no longer in Label Studio); new_label and reviewed_by: that annotation's label and annotator.
    """
    if requests.empty:
        return pd.DataFrame(columns=OUTCOME_COLUMNS)
    latest = requests.sort_values("sent_at", kind="stable").groupby("task_id").tail(1)
    live = annotations_now[~annotations_now["was_cancelled"].astype(bool)]
    parts = []
    for snapshot_id, group in latest.groupby("snapshot_id", sort=False):
        then = annotations_at(snapshot_id)
        seen = set() if then is None else set(zip(then["annotation_id"], then["updated_at"]))
        fresh = live[live["task_id"].isin(group["task_id"])]
        fresh = fresh[[(a, u) not in seen for a, u in zip(fresh["annotation_id"], fresh["updated_at"])]]
        newest = fresh.sort_values(["updated_at", "annotation_id"]).groupby("task_id").tail(1).set_index("task_id")
        label = newest["labels"].map(lambda labels: str(labels[0]) if len(labels) else "")
        part = group.assign(new_label=group["task_id"].map(label).fillna(""),
                            reviewed_by=group["task_id"].map(newest["annotator"]).fillna(""))
        reviewed = part["task_id"].isin(newest.index)
        took = reviewed & (part["suggested_label"] != "") & (part["new_label"] == part["suggested_label"])
        kept = reviewed & ~took & (part["new_label"] == part["given_label"])
        gone = ~part["task_id"].isin(list(task_ids_now))
        part["outcome"] = [GONE if g else TOOK if t else KEPT if k else OTHER if r else WAITING
                           for g, t, k, r in zip(gone, took, kept, reviewed)]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)[OUTCOME_COLUMNS].sort_values("sent_at", kind="stable",
                                                                            ignore_index=True)
