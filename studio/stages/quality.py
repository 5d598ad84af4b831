"""The quality stage of a workspace (`ws.quality`): run the label-quality checks on a snapshot, read the stored
report back, and cross-validate the fine-tuned model as a background job whose probabilities the next checks
use. Everything lives under the project's quality/<snapshot id>/ (<state>/projects/<key>/).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from studio.review import flagged_label_issues
from studio.snapshot import Snapshot
from studio.types import ProgressFn

if TYPE_CHECKING:
    from studio.workspace import Workspace


class QualityService:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def folder(self, snapshot: Snapshot) -> Path:
        """<project>/quality/<snapshot id>/: the snapshot's quality report and cross-validated probabilities."""
        return self.ws.project_dir / "quality" / snapshot.id

    def assess(self, snapshot: Snapshot, *, progress: ProgressFn | None = None):
        """Run the label-quality checks (and multi-annotator consensus where tasks have 2+ annotators) on a
        snapshot, store the result under quality/<snapshot id>/ and return it."""
        from studio.assess import build_assessment

        ws = self.ws
        folder = self.folder(snapshot)
        if snapshot.schema.kind.name == "generation":
            from studio.assess_generation import build_generation_assessment

            report = build_generation_assessment(snapshot, lambda texts: ws.embed(texts, progress=progress),
                                                 config=ws.cfg.genquality)
            report.save(folder)
            return report
        if snapshot.schema.kind.name == "spans":
            from studio.assess_spans import build_span_assessment

            span_report = build_span_assessment(snapshot, lambda texts: ws.embed_words(texts, progress=progress),
                                                folds=ws.cfg.quality.folds, seed=ws.cfg.quality.seed)
            span_report.save(folder)
            return span_report
        assessment = build_assessment(snapshot, lambda texts: ws.embed(texts, progress=progress),
                                      config=ws.cfg.quality, crossval_folder=folder)
        assessment.save(folder)
        return assessment

    def assessment(self, snapshot: Snapshot):
        """The stored assessment of a snapshot (a SpanAssessment for span projects, a GenerationAssessment for
        instruction -> response ones), or None if `assess` has not run on it."""
        from studio.assess import Assessment

        if snapshot.schema.kind.name == "generation":
            from studio.assess_generation import GenerationAssessment

            return GenerationAssessment.load(self.folder(snapshot), snapshot.id)
        if snapshot.schema.kind.name == "spans":
            from studio.assess_spans import SpanAssessment

            return SpanAssessment.load(self.folder(snapshot), snapshot.id)
        return Assessment.load(self.folder(snapshot), snapshot.id)

    def crossval_rows(self, snapshot: Snapshot) -> tuple[pd.DataFrame, list[str]]:
        """(task_id, text, label index, exclude) of the labeled tasks the quality checks see, and the class names.
        exclude: the snapshot's stored report flagged the label (the folds do not learn from it, as in the
        checks' refit round); all False before the first report."""
        from studio.assess import quality_inputs

        labeled, y, classes = quality_inputs(snapshot)
        rows = pd.DataFrame({"task_id": labeled["task_id"].to_numpy(), "text": labeled["text"].tolist(), "label": y})
        report = self.assessment(snapshot)
        flagged = set(flagged_label_issues(report.issues)["task_id"]) if report is not None else set()
        return rows.assign(exclude=rows["task_id"].isin(flagged)), classes

    def start_crossval(self, snapshot: Snapshot):
        """Start the background job that cross-validates the fine-tuned model ([train] settings, [quality] folds)
        on the snapshot's labels; the next `assess` of this snapshot uses its probabilities. Raises
        JobAlreadyRunning while a training or cross-validation job runs."""
        from training.crossval import start_crossval_job

        ws = self.ws
        rows, classes = self.crossval_rows(snapshot)
        return start_crossval_job(rows, classes, output=self.folder(snapshot),
                                  config=ws.cfg.train, jobs_root=ws.jobs_root, folds=ws.cfg.quality.folds,
                                  seed=ws.cfg.quality.seed, cache_dir=ws.cache_dir,
                                  meta={"snapshot_id": snapshot.id, "tasks": len(rows),
                                        "excluded": int(rows["exclude"].sum())})

    def crossval_meta(self, snapshot: Snapshot) -> dict | None:
        """What is known about stored cross-validated probabilities for this snapshot (None: there are none)."""
        from studio.assess import read_crossval_meta

        return read_crossval_meta(self.folder(snapshot))
