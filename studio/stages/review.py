"""The review stage of a workspace (`ws.review`): auto-fix, sending tasks to Label Studio for re-review and what
came back (the request log under <state>/review_requests/), the suggestions' track record, and decisions on
labels the annotators changed since.

It uses the workspace's decision log, snapshot store and Label Studio client, and the stored quality reports
(`ws.quality`); the decisions themselves are studio/review.py's.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Collection, Sequence

import pandas as pd

from studio.rereview import RequestLog
from studio.snapshot import Snapshot, SnapshotStore

if TYPE_CHECKING:
    from studio.workspace import Workspace


# Snapshots are content-addressed and never change, so what the review loop reads from them on every page run
# (the labels then and now, the annotations a request was sent from) is read once per process.
@lru_cache(maxsize=4)
def _stored(store_root: str, snapshot_id: str) -> Snapshot | None:
    """A stored snapshot, read-only; None if it is gone."""
    from studio.errors import SnapshotNotFound

    try:
        return SnapshotStore(store_root).load(snapshot_id)
    except SnapshotNotFound:
        return None


@lru_cache(maxsize=16)
def _stored_labels(store_root: str, snapshot_id: str) -> pd.Series | None:
    """task_id -> a stored snapshot's labels in a few words (the kind's target_text: "a, b" for multi-label);
    None if it is gone."""
    snapshot = _stored(store_root, snapshot_id)
    if snapshot is None:
        return None
    kind = snapshot.schema.kind
    view = snapshot.labeled().set_index("task_id")
    return view[kind.target_column].map(kind.target_text)


def check_classes(classes: Collection[str] | None, known: Sequence[str]) -> None:
    """Raise DataError, with a "did you mean", if a class asked for (auto-fix's `classes` filter) is not one of the
    `known` classes (the report's, from the labeling config): a typo would otherwise match nothing, silently."""
    from studio.errors import DataError, did_you_mean

    known = [str(k) for k in known]
    allowed = set(known)
    unknown = [c for c in classes or [] if c not in allowed]
    if not unknown:
        return
    what = f"Class {unknown[0]!r} is" if len(unknown) == 1 else f"Classes {', '.join(map(repr, unknown))} are"
    listed = ", ".join(known[:20]) + (f" … ({len(known)} in all: see the labeling config)" if len(known) > 20 else "")
    raise DataError(f"{what} not in the labeling config, so no task has it as its label."
                    f"{did_you_mean(unknown[0], known)}",
                    hint=f"use one of: {listed}")


class ReviewService:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def send_for_review(self, snapshot: Snapshot, rows: pd.DataFrame) -> tuple[int, int]:
        """Push suggested labels (rows: studio.review.review_requests) as `quality-<snapshot>` predictions, list
        the tasks in a "Needs review" Data Manager tab and log the requests (rereview_log). Tasks already in the tab
        are skipped. Returns (tasks sent, view id)."""
        from studio.push import send_for_review

        project_id = snapshot.manifest["project_id"]
        sent, view = send_for_review(self.ws.client, project_id, rows, snapshot.schema, snapshot_id=snapshot.id)
        if len(sent):
            self.rereview_log(project_id).append(sent, snapshot_id=snapshot.id)
        return len(sent), view

    def retire_reviewed(self, snapshot: Snapshot) -> int:
        """Take the suggestion (the `quality-*` prediction) off each task sent for re-review whose review has come
        back as of this snapshot, so the "Needs review" tab lists only the tasks still waiting. What came back stays
        in the request log and the snapshots. Returns how many predictions were removed."""
        from studio.rereview import GONE, WAITING

        outcomes = self.rereview_outcomes(snapshot)
        done = outcomes[~outcomes["outcome"].isin([WAITING, GONE])] if not outcomes.empty else outcomes
        removed = 0
        for task in done["task_id"] if not done.empty else []:
            for prediction in self.ws.client.request("GET", "api/predictions/", params={"task": int(task)}) or []:
                if str(prediction.get("model_version", "")).startswith("quality-"):
                    self.ws.client.request("DELETE", f"api/predictions/{prediction['id']}/")
                    removed += 1
        return removed

    def ask_second_annotator(self, snapshot: Snapshot, annotator: str, *, n: int, seed: int = 0) -> list[int]:
        """Have a sample of `n` of the tasks `annotator` labeled alone labeled once more, by someone else: each is
        served again in Label Studio's labeling stream (never to the annotator who labeled it). The next sync brings
        the second labels, and CROWDLAB then has the overlap to estimate the annotator's quality. Returns the task
        ids asked for."""
        import numpy as np

        votes = snapshot.annotations[~snapshot.annotations["was_cancelled"].astype(bool)]
        per_task = votes.groupby("task_id")["annotator"].agg(lambda a: sorted(set(a)))
        alone = [int(t) for t, who in per_task.items() if who == [annotator]]
        if not alone:
            return []
        rng = np.random.default_rng(seed)
        chosen = sorted(int(t) for t in rng.choice(alone, size=min(n, len(alone)), replace=False))
        return [t for t in chosen if self.ws.client.ask_another_annotator(t)]

    def outdated_decisions(self, snapshot: Snapshot) -> pd.DataFrame:
        """Decisions in force taken on a label the annotators have changed since (studio.review.outdated_decisions),
        as of this snapshot. Multi-label tasks compare their label sets, shown as "a, b"."""
        from studio.review import outdated_decisions

        root = str(self.ws.store.root)
        return outdated_decisions(self.ws.decisions(snapshot.manifest["project_id"]).read(),
                                  lambda snapshot_id: _stored_labels(root, snapshot_id),
                                  _stored_labels(root, snapshot.id))

    def resolve_outdated(self, snapshot: Snapshot, *, author: str, confirm: bool) -> int:
        """Settle the outdated decisions of this snapshot: confirm=True takes each again on this snapshot (it
        keeps applying), False undoes it and any earlier decision on the task (the annotators' label counts).
        Returns how many tasks were settled."""
        from studio.review import confirm_again

        outdated = self.outdated_decisions(snapshot)
        log = self.ws.decisions(snapshot.manifest["project_id"])
        if outdated.empty:
            return 0
        if confirm:
            log.append(confirm_again(outdated, author=author, snapshot_id=snapshot.id),
                       classes=snapshot.schema.classes)
        else:
            log.undo_all(outdated["task_id"].astype(int).tolist(), author=author, snapshot_id=snapshot.id)
        return len(outdated)

    def outdated_warning(self, snapshot: Snapshot) -> str | None:
        """One line for the CLI and the pages when some decisions are outdated, else None."""
        n = len(self.outdated_decisions(snapshot))
        return (f"{n} review decision(s) were taken on a label the annotators have changed since; they still "
                "apply. Confirm them again or undo them: the Curate page, or `studio outdated`.") if n else None

    def rereview_log(self, project_id: int) -> RequestLog:
        return RequestLog(self.ws.folder("review_requests"), project_id)

    def rereview_outcomes(self, snapshot: Snapshot) -> pd.DataFrame:
        """The tasks sent for re-review (newest request per task) and what annotators did with them up to this
        snapshot (studio.rereview.rereview_outcomes)."""
        from studio.rereview import rereview_outcomes

        def annotations_at(snapshot_id: str) -> pd.DataFrame | None:
            stored = snapshot if snapshot_id == snapshot.id else _stored(str(self.ws.store.root), snapshot_id)
            return None if stored is None else stored.annotations

        requests = self.rereview_log(snapshot.manifest["project_id"]).read()
        return rereview_outcomes(requests, annotations_at, snapshot.annotations, set(snapshot.tasks["task_id"]))

    def auto_fix(self, snapshot: Snapshot, *, author: str, min_confidence: float | None = None,
                 classes: list[str] | None = None, send_rest: bool = False,
                 dry_run: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, int]:
        """Relabel to the suggestion the flagged label issues of the snapshot's stored report that the model
        suggests with at least min_confidence (default [quality] auto_fix_confidence), as decisions by `author`;
        tasks someone already decided are left alone. send_rest: the other flagged label issues go to Label
        Studio's "Needs review" tab; classes: only tasks with these given labels (None = all). Returns (fixed rows,
        rest rows, tasks sent); dry_run changes nothing."""
        from studio.errors import SnapshotNotFound, UnsupportedTaskKind
        from studio.review import auto_fix_decisions, auto_fix_plan, review_requests

        kind = snapshot.schema.kind
        if kind.name != "single_label":
            raise UnsupportedTaskKind(f"Auto-fix relabels single-label classification tasks; this project is "
                                      f"{kind.description}.",
                                      hint="review the flagged prompts on the Quality page (keep / exclude / use "
                                           "another expert's answer)" if kind.name == "generation" else
                                      "review the flagged texts on the Quality page (keep / take the suggestion "
                                      "/ exclude), or send them to Label Studio")
        report = self.ws.quality.assessment(snapshot)
        if report is None:
            raise SnapshotNotFound(f"Snapshot {snapshot.id} has no quality report yet, so there is nothing to fix.",
                                   hint="run `studio quality` (or press Run quality checks) first")
        check_classes(classes, report.meta["classes"])
        threshold = self.ws.cfg.quality.auto_fix_confidence if min_confidence is None else min_confidence
        log = self.ws.decisions(snapshot.manifest["project_id"])
        if dry_run:
            fix, rest = auto_fix_plan(report.issues, log.read(), min_confidence=threshold, classes=classes)
            return fix, rest, 0
        # Read, plan and append under one lock: two auto-fixes at once would both relabel the same tasks.
        with log.lock():
            fix, rest = auto_fix_plan(report.issues, log.read(), min_confidence=threshold, classes=classes)
            log.append(auto_fix_decisions(fix, author=author, snapshot_id=snapshot.id, min_confidence=threshold),
                       classes=report.meta["classes"])
        sent = self.send_for_review(snapshot, review_requests(rest))[0] if send_rest and len(rest) else 0
        return fix, rest, sent

    def suggestion_track_record(self, snapshot: Snapshot) -> pd.DataFrame:
        """What people did with the suggestions of the snapshot's stored report and with those sent to Label
        Studio (studio.review.suggestion_track_record); empty before the first report."""
        from studio.review import TRACK_RECORD_COLUMNS, suggestion_track_record

        report = self.ws.quality.assessment(snapshot)
        if report is None:
            return pd.DataFrame(columns=TRACK_RECORD_COLUMNS)
        return suggestion_track_record(report.issues, self.ws.decisions(snapshot.manifest["project_id"]).read(),
                                       self.rereview_outcomes(snapshot))
