"""Sync: pull a Label Studio project into a new immutable snapshot.

Full sync = one bulk export of every task with all annotations. Incremental sync (the default once a
snapshot exists) asks Label Studio only for tasks whose `updated_at` moved since the newest snapshot
(annotation create/edit/delete bumps it), exports just those, and merges them into the previous tables. If
the task count does not add up afterwards (tasks were deleted), it falls back to a full sync. Either way the
result is content-addressed, so a sync with nothing changed writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from studio.errors import DamagedSnapshot, EmptyDataError
from studio.labeling import LabelingSchema, parse_labeling_config
from studio.labelstudio.client import LabelStudioClient
from studio.records import annotations_frame, tasks_frame
from studio.snapshot import Snapshot, SnapshotStore
from studio.types import ProgressFn

# Re-read tasks updated a little before the watermark: timestamps of concurrent writes can interleave.
_WATERMARK_MARGIN = timedelta(seconds=2)


@dataclass
class SyncResult:
    snapshot: Snapshot
    created: bool           # False: the content equals an existing snapshot, nothing was written
    mode: str               # "full" or "incremental"
    fetched_tasks: int      # tasks downloaded in this sync
    note: str = ""          # e.g. the newest stored snapshot was damaged, so this sync pulled everything


def sync_project(client: LabelStudioClient, store: SnapshotStore, project_id: int, *, full: bool = False,
                 allow_empty: bool = False, progress: ProgressFn | None = None) -> SyncResult:
    """Pull project `project_id` into `store`. progress(step, 3) is called as each stage finishes."""
    project = client.get_project(project_id)
    schema = parse_labeling_config(project.label_config)
    if project.task_number == 0 and not allow_empty:
        raise EmptyDataError(f"Project {project_id} ('{project.title}') on {client.url} has no tasks.",
                             hint="import data with `studio import FILE` or in Label Studio, then sync again")
    note = ""
    try:
        previous = None if full else store.latest(project_id)
    except DamagedSnapshot as exc:  # an incremental sync builds on it: pull everything instead, and say so
        previous, note = None, f"The newest stored snapshot is damaged ({exc}); this sync pulled every task."
    if previous is not None and previous.manifest["labeling_config_hash"] != schema.config_hash:
        previous = None  # the config changed: labels may read differently, start from scratch
    users = client.users()
    if progress:
        progress(1, 3)
    if previous is None or not previous.manifest.get("max_updated_at"):
        records = client.export_tasks(project_id)
        tasks, annotations = tasks_frame(records, schema), annotations_frame(records, schema, users)
        mode, fetched = "full", len(records)
    else:
        changed = _changed_task_ids(client, project_id, previous)
        records = client.export_tasks(project_id, ids=changed) if changed else []
        tasks, annotations = _merge(previous, records, schema, users)
        mode, fetched = "incremental", len(records)
        if len(tasks) != client.project_task_count(project_id):  # tasks were deleted: only a full pull tells
            return sync_project(client, store, project_id, full=True, allow_empty=allow_empty, progress=progress)
    if progress:
        progress(2, 3)
    snapshot, created = store.write(tasks, annotations, schema=schema, project_id=project_id,
                                    project_title=project.title, source_url=client.url,
                                    parent=previous.id if previous else None, mode=mode)
    if progress:
        progress(3, 3)
    return SyncResult(snapshot, created, mode, fetched, note)


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _changed_task_ids(client: LabelStudioClient, project_id: int, previous: Snapshot) -> list[int]:
    """Tasks to re-fetch. Tasks updated after the watermark (the newest updated_at in the snapshot), plus,
    only if the server counts a different number of tasks than we hold in the margin just before the
    watermark (a write that committed late), every task in that margin."""
    watermark = _parse(previous.manifest["max_updated_at"])
    lower = watermark - _WATERMARK_MARGIN
    held = previous.tasks["updated_at"].map(_parse)
    in_margin = set(previous.tasks.loc[(held > lower) & (held <= watermark), "task_id"])
    moved = client.task_ids_updated_since(project_id, watermark)
    expected = len(in_margin - set(moved))  # tasks edited since have left the margin
    if client.count_tasks_updated_between(project_id, lower, watermark) != expected:
        return client.task_ids_updated_since(project_id, lower)
    return moved


def _merge(previous: Snapshot, records: list[dict], schema: LabelingSchema,
           users: dict[int, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replace the changed tasks (and all their annotations) in the previous tables."""
    if not records:
        return previous.tasks, previous.annotations
    fresh_tasks, fresh_annotations = tasks_frame(records, schema), annotations_frame(records, schema, users)
    ids = set(fresh_tasks["task_id"])
    tasks = pd.concat([previous.tasks[~previous.tasks["task_id"].isin(ids)], fresh_tasks])
    annotations = pd.concat([previous.annotations[~previous.annotations["task_id"].isin(ids)], fresh_annotations])
    return (tasks.sort_values("task_id", ignore_index=True),
            annotations.sort_values("annotation_id", ignore_index=True))
