"""Immutable, content-addressed snapshots of a Label Studio project, and diffs between them.

A snapshot is a folder `<state>/snapshots/<snapshot_id>/` with `tasks.parquet`, `annotations.parquet`,
`validation.parquet` and `manifest.json`. snapshot_id = hash of (project, labeling config, tasks,
annotations): the same content always gets the same id, and writing it again writes nothing. Folders are
written under a temporary name and renamed into place, so a crash never leaves a half snapshot.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from studio.errors import DamagedSnapshot, SnapshotNotFound
from studio.labeling import LabelingSchema, parse_labeling_config
from studio.records import labeled_view, validation_report


#: what a snapshot id looks like (content_id's 16 hex digits; letters, digits, '-' and '_' allowed).
SNAPSHOT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
REPAIR_HINT = ("run `studio sync --full` to write it again from Label Studio (the damaged copy is moved aside, "
               "not deleted); the other snapshots stay usable")


def content_id(project_id: int, config_hash: str, tasks: pd.DataFrame, annotations: pd.DataFrame) -> str:
    """sha256 over the canonical content; list columns are hashed through their JSON form.

    A task's `updated_at` is left out: Label Studio moves it when a prediction is added (a model's
    pre-annotation, when someone opens the Data Manager), which changes nothing a person labeled. It stays in
    the table as the incremental sync's watermark. An annotation's `updated_at` counts: it moves when it is edited.
    """
    digest = hashlib.sha256(f"{project_id}|{config_hash}|".encode())
    for frame in (tasks.drop(columns=["updated_at"], errors="ignore"), annotations):
        canonical = frame.copy()
        for column in canonical.columns:
            if canonical[column].dtype == object:
                canonical[column] = canonical[column].map(
                    lambda v: json.dumps(list(v)) if not isinstance(v, str) and hasattr(v, "__len__") else v)
        digest.update(",".join(canonical.columns).encode())
        digest.update(pd.util.hash_pandas_object(canonical, index=False).values.tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Snapshot:
    """One loaded snapshot. `manifest` has id, project, config, counts, time, parent and the sync mode."""

    id: str
    tasks: pd.DataFrame
    annotations: pd.DataFrame
    validation: pd.DataFrame
    manifest: dict[str, Any]

    @cached_property
    def schema(self) -> LabelingSchema:
        """The labeling config, parsed once per loaded snapshot (every stage asks it for the task kind)."""
        return parse_labeling_config(self.manifest["labeling_config"])

    def labeled(self) -> pd.DataFrame:
        return labeled_view(self.tasks, self.annotations, self.schema)

    def spans(self) -> pd.DataFrame:
        """Named-entity projects: every annotator's spans in long form, one row per span (task_id, annotation_id,
        annotator, start, end, text, label), as each annotator wrote them (the validation report says which are
        unusable). A submitted annotation with no entities has no row here but is a labeled task."""
        from studio.spans import spans_from_result

        schema = self.schema
        schema.kind.require("sync")
        text = self.tasks.set_index("task_id")["text"]
        rows = []
        for a in self.annotations[~self.annotations["was_cancelled"]].itertuples(index=False):
            for span in spans_from_result(json.loads(a.result or "[]"), from_name=schema.from_name):
                start, end = int(span["start"]), int(span["end"])
                rows.append({"task_id": int(a.task_id), "annotation_id": int(a.annotation_id),
                             "annotator": a.annotator, "start": start, "end": end,
                             "text": span.get("text", str(text.get(a.task_id, ""))[start:end]),
                             "label": str(span["label"])})
        return pd.DataFrame(rows, columns=["task_id", "annotation_id", "annotator", "start", "end", "text", "label"])


    def responses(self) -> pd.DataFrame:
        """Instruction -> response projects: every annotator's answer in long form, one row per submitted
        annotation (task_id, annotation_id, annotator, prompt, response, updated_at), as written (empty answers
        included: the validation report lists them)."""
        kind = self.schema.kind
        if kind.name != "generation":
            from studio.errors import UnsupportedTaskKind

            raise UnsupportedTaskKind(f"Answers in long form are for instruction -> response projects; this is a "
                                      f"{kind.description} project.")
        text = self.tasks.set_index("task_id")["text"]
        rows = [{"task_id": int(a.task_id), "annotation_id": int(a.annotation_id), "annotator": a.annotator,
                 "prompt": str(text.get(a.task_id, "")), "response": kind.answer(json.loads(a.result or "[]")),
                 "updated_at": a.updated_at}
                for a in self.annotations[~self.annotations["was_cancelled"]].itertuples(index=False)]
        return pd.DataFrame(rows, columns=["task_id", "annotation_id", "annotator", "prompt", "response",
                                           "updated_at"])


def build_manifest(snapshot_id: str, *, project_id: int, project_title: str, schema: LabelingSchema,
                   tasks: pd.DataFrame, annotations: pd.DataFrame, validation: pd.DataFrame,
                   source_url: str, parent: str | None, mode: str) -> dict[str, Any]:
    submitted = annotations[~annotations["was_cancelled"]]
    return {
        "snapshot_id": snapshot_id,
        "project_id": project_id,
        "project_title": project_title,
        "labeling_config_hash": schema.config_hash,
        "labeling_config": schema.xml,
        "classes": list(schema.classes),
        "task": schema.task,
        "source_url": source_url,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "parent": parent,
        "sync_mode": mode,
        "counts": {
            "tasks": int(len(tasks)),
            "annotations": int(len(annotations)),
            "submitted_annotations": int(len(submitted)),
            "cancelled_annotations": int(annotations["was_cancelled"].sum()),
            "labeled_tasks": int(submitted["task_id"].nunique()),
            "annotators": int(annotations["annotator"].nunique()),
        },
        "validation": {k: int(v) for k, v in validation["problem"].value_counts().items()},
        "max_updated_at": max([*tasks["updated_at"].tolist(), ""]),
    }


class SnapshotStore:
    """Snapshots on disk under `root` (normally <state_dir>/snapshots)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def write(self, tasks: pd.DataFrame, annotations: pd.DataFrame, *, schema: LabelingSchema, project_id: int,
              project_title: str, source_url: str, parent: str | None = None,
              mode: str = "full") -> tuple[Snapshot, bool]:
        """Write a snapshot unless one with the same content exists. Returns (snapshot, created).

        An existing copy is trusted only when it reads back with the content its id names; a damaged one is moved
        aside (`.damaged-<id>-<time>`, kept for a person to look at) and written again from this content."""
        snapshot_id = content_id(project_id, schema.config_hash, tasks, annotations)
        self._clean_temporary()
        if (self.root / snapshot_id / "manifest.json").exists():
            existing = self._verified(snapshot_id)
            if existing is not None:
                return existing, False
        validation = validation_report(tasks, annotations, schema)
        manifest = build_manifest(snapshot_id, project_id=project_id, project_title=project_title, schema=schema,
                                  tasks=tasks, annotations=annotations, validation=validation,
                                  source_url=source_url, parent=parent, mode=mode)
        tmp = self.root / f".tmp-{snapshot_id}-{uuid.uuid4().hex[:6]}"
        tmp.mkdir(parents=True)
        try:
            tasks.to_parquet(tmp / "tasks.parquet", index=False)
            annotations.to_parquet(tmp / "annotations.parquet", index=False)
            validation.to_parquet(tmp / "validation.parquet", index=False)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            os.replace(tmp, self.root / snapshot_id)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if (self.root / snapshot_id / "manifest.json").exists():  # a concurrent sync won the race
                return self.load(snapshot_id), False
            raise
        return Snapshot(snapshot_id, tasks, annotations, validation, manifest), True

    def _clean_temporary(self, max_age_s: float = 3600.0) -> None:
        """Remove `.tmp-*` folders a crashed write left behind (older than max_age_s, so never a write in progress)."""
        import time

        if not self.root.exists():
            return
        for folder in self.root.glob(".tmp-*"):
            try:
                if time.time() - folder.stat().st_mtime > max_age_s:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                continue

    def _verified(self, snapshot_id: str) -> Snapshot | None:
        """The stored snapshot if it reads back with the content its id names; otherwise it is moved aside."""
        try:
            stored = self.load(snapshot_id)
            ok = content_id(int(stored.manifest["project_id"]), stored.manifest["labeling_config_hash"],
                            stored.tasks, stored.annotations) == snapshot_id
        except (DamagedSnapshot, KeyError, TypeError, ValueError):
            ok = False
        if ok:
            return stored
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        aside = self.root / f".damaged-{snapshot_id}-{stamp}"
        os.replace(self.root / snapshot_id, aside)
        import logging

        logging.getLogger("studio").warning("Snapshot %s was damaged: moved to %s and written again.",
                                            snapshot_id, aside)
        return None

    def ids(self) -> list[str]:
        """Stored snapshot ids (never a temporary or damaged folder, whose names start with a dot)."""
        if not self.root.exists():
            return []
        return [p.name for p in self.root.iterdir() if not p.name.startswith(".") and (p / "manifest.json").exists()]

    def folder(self, snapshot_id: str) -> Path:
        """The snapshot's folder; an id that is not an id (a path, `..`) is refused before any file is touched."""
        if not isinstance(snapshot_id, str) or not SNAPSHOT_ID.match(snapshot_id):
            raise SnapshotNotFound(f"{snapshot_id!r} is not a snapshot id (ids are letters, digits, '-' and '_', "
                                   "as `studio snapshots` lists them).",
                                   hint="pick an id from `studio snapshots`")
        return self.root / snapshot_id

    def manifest(self, snapshot_id: str) -> dict[str, Any]:
        file = self.folder(snapshot_id) / "manifest.json"
        if not file.exists():
            known = ", ".join(sorted(self.ids())[:5]) or "none yet"
            raise SnapshotNotFound(f"No snapshot '{snapshot_id}' in {self.root} (known: {known}).",
                                   hint="run `studio sync` or pick an id from `studio snapshots`")
        try:
            manifest = json.loads(file.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise DamagedSnapshot(f"{file} is damaged ({exc}).", hint=REPAIR_HINT) from None
        return manifest

    def load(self, snapshot_id: str) -> Snapshot:
        manifest = self.manifest(snapshot_id)
        folder = self.folder(snapshot_id)
        frames = {}
        for name in ("tasks", "annotations", "validation"):
            file = folder / f"{name}.parquet"
            try:
                frames[name] = pd.read_parquet(file)
            except FileNotFoundError:
                raise DamagedSnapshot(f"Snapshot {snapshot_id} has no {file.name} ({folder}).",
                                      hint=REPAIR_HINT) from None
            except Exception as exc:  # pyarrow raises several types for a truncated or corrupt file
                raise DamagedSnapshot(f"{file} is damaged ({type(exc).__name__}: {str(exc).splitlines()[0]}).",
                                      hint=REPAIR_HINT) from None
        annotations = frames["annotations"]
        annotations["labels"] = annotations["labels"].map(list)
        return Snapshot(snapshot_id, frames["tasks"], annotations, frames["validation"], manifest)

    def damaged(self) -> list[str]:
        """What is wrong with each stored snapshot whose manifest cannot be read (one line each)."""
        out = []
        for snapshot_id in self.ids():
            try:
                self.manifest(snapshot_id)
            except DamagedSnapshot as exc:
                out.append(str(exc))
        return out

    def history(self, project_id: int | None = None) -> pd.DataFrame:
        """All snapshots, newest first: id, time, mode, parent and the counts. A snapshot whose manifest is
        damaged is left out (`damaged()` names it), so one bad file does not hide the others."""
        rows = []
        for snapshot_id in self.ids():
            try:
                m = self.manifest(snapshot_id)
            except DamagedSnapshot:
                continue
            if project_id is not None and m["project_id"] != project_id:
                continue
            rows.append({"snapshot_id": snapshot_id, "created_at": m["created_at"], "project_id": m["project_id"],
                         "sync_mode": m["sync_mode"], "parent": m["parent"], **m["counts"],
                         "problems": sum(m["validation"].values())})
        columns = ["snapshot_id", "created_at", "project_id", "sync_mode", "parent", "tasks", "annotations",
                   "submitted_annotations", "cancelled_annotations", "labeled_tasks", "annotators", "problems"]
        frame = pd.DataFrame(rows, columns=columns)
        return frame.sort_values("created_at", ascending=False, ignore_index=True)

    def latest(self, project_id: int | None = None) -> Snapshot | None:
        history = self.history(project_id)
        return None if history.empty else self.load(history.iloc[0]["snapshot_id"])


@dataclass
class SnapshotDiff:
    """What changed between two snapshots, annotation by annotation."""

    old_id: str
    new_id: str
    added: pd.DataFrame      # annotations only in the new snapshot
    removed: pd.DataFrame    # annotations only in the old snapshot
    changed: pd.DataFrame    # same annotation id, different labels/result/cancelled flag
    tasks_added: list[int]
    tasks_removed: list[int]

    def summary(self) -> dict[str, int]:
        return {"annotations_added": len(self.added), "annotations_removed": len(self.removed),
                "annotations_changed": len(self.changed), "tasks_added": len(self.tasks_added),
                "tasks_removed": len(self.tasks_removed)}


def diff_snapshots(old: Snapshot, new: Snapshot) -> SnapshotDiff:
    """What changed from `old` to `new`, two snapshots of one project (of two projects, a diff means nothing and
    is refused)."""
    if old.manifest["project_id"] != new.manifest["project_id"]:
        from studio.errors import DataError

        raise DataError(f"Snapshots {old.id} and {new.id} are of different projects ({old.manifest['project_id']}: "
                        f"'{old.manifest.get('project_title', '')}', {new.manifest['project_id']}: "
                        f"'{new.manifest.get('project_title', '')}'): their diff would mean nothing.",
                        hint="compare two snapshots of one project (`studio snapshots` lists each one's project)")
    keep = ["annotation_id", "task_id", "annotator", "labels", "result", "was_cancelled"]
    a, b = old.annotations[keep], new.annotations[keep]
    added = b[~b["annotation_id"].isin(a["annotation_id"])].reset_index(drop=True)
    removed = a[~a["annotation_id"].isin(b["annotation_id"])].reset_index(drop=True)
    both = a.merge(b, on="annotation_id", suffixes=("_old", "_new"))
    moved = (both["result_old"] != both["result_new"]) | (both["was_cancelled_old"] != both["was_cancelled_new"])
    changed = both.loc[moved, ["annotation_id", "task_id_new", "annotator_new", "labels_old", "labels_new",
                               "was_cancelled_old", "was_cancelled_new"]]
    changed = changed.rename(columns={"task_id_new": "task_id", "annotator_new": "annotator"})
    old_tasks, new_tasks = set(old.tasks["task_id"]), set(new.tasks["task_id"])
    return SnapshotDiff(old.id, new.id, added, removed, changed.reset_index(drop=True),
                        sorted(new_tasks - old_tasks), sorted(old_tasks - new_tasks))
