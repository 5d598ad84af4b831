"""Snapshot -> the quality report of an instruction -> response project, and that report on disk.

The generation kind's counterpart of studio/assess.py: every expert's answer (Snapshot.responses(), empty ones
left to the validation report), the checks of studio/generation_quality.py on the encoder's embeddings of
prompts and answers, and a per-task table for the review queue (the worst issue of each task, its prompt, the
answer in force and every expert's answer). Stored under the project's quality/<snapshot id>/ with meta.json
saying which kind it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from studio.report_tables import json_default, load_tables, read_meta, save_tables
from studio.errors import EmptyDataError
from studio.snapshot import Snapshot


@dataclass
class GenerationAssessment:
    """issues: one row per flag (studio.gen_checks.ISSUE_COLUMNS: task_id, annotator, check, score (higher =
    worse), field, detail, related); summary: per check, flagged rows, tasks and thresholds; tasks: one row per
    flagged task (task_id, prompt, response in force, answers = [{annotator, response}], worst check, score,
    checks); datalab: cleanlab Datalab's own summary of the prompt embeddings."""

    snapshot_id: str
    issues: pd.DataFrame
    summary: pd.DataFrame
    tasks: pd.DataFrame
    datalab: pd.DataFrame
    meta: dict

    TABLES = ("issues", "summary", "tasks", "datalab")
    KIND = "generation"

    def flagged(self, check: str | None = None) -> pd.DataFrame:
        """Flagged tasks, worst first; with `check`, only the tasks that check flags."""
        if check is None:
            return self.tasks
        ids = set(self.issues.loc[self.issues["check"] == check, "task_id"])
        return self.tasks[self.tasks["task_id"].isin(ids)]

    def save(self, folder: Path) -> None:
        """Every table, then meta.json (studio/report_tables.py: a reader never sees half)."""
        save_tables(folder, {name: getattr(self, name) for name in self.TABLES}, {**self.meta, "kind": self.KIND})

    @classmethod
    def load(cls, folder: Path, snapshot_id: str) -> GenerationAssessment | None:
        meta = read_meta(folder)
        if meta is None or meta.get("kind") != cls.KIND:
            return None
        tables = load_tables(folder, cls.TABLES, json_columns=("related", "answers", "checks"))
        return cls(snapshot_id=snapshot_id, meta=meta, **tables)


def build_generation_assessment(snapshot: Snapshot, embed: Callable[[list[str]], np.ndarray], *,
                                config=None) -> GenerationAssessment:
    """Run the generation checks on every expert's (non-empty) answer of the snapshot."""
    from studio.generation_quality import run_generation_checks, summarise_issues

    kind = snapshot.schema.kind
    kind.require("quality", what="The quality checks")
    answers = snapshot.responses()
    answers = answers[answers["response"].str.strip() != ""]
    if answers.empty:
        raise EmptyDataError(f"Snapshot {snapshot.id} has no answered prompts to check.",
                             hint="answer some prompts in Label Studio (or import answers), sync, and try again")
    report = run_generation_checks(answers[["task_id", "prompt", "response", "annotator"]].reset_index(drop=True),
                                   embed, config=config)
    in_force = snapshot.labeled().set_index("task_id")[kind.target_column]
    tasks = _task_table(report.issues, answers, in_force)
    meta = {"n_tasks": int(report.n_tasks), "n_responses": int(report.n_responses), "checks": report.checks,
            "flagged_tasks": int(len(tasks)), "timings": report.timings, "warnings": report.warnings,
            "info": json.loads(json.dumps(report.info, default=json_default))}
    return GenerationAssessment(snapshot_id=snapshot.id, issues=report.issues.reset_index(drop=True),
                                summary=summarise_issues(report), tasks=tasks,
                                datalab=report.datalab_summary.reset_index(drop=True), meta=meta)


def _task_table(issues: pd.DataFrame, answers: pd.DataFrame, in_force: pd.Series) -> pd.DataFrame:
    columns = ["task_id", "score", "check", "checks", "detail", "prompt", "response", "n_answers", "answers"]
    if issues.empty:
        return pd.DataFrame(columns=columns)
    by_task = answers.groupby("task_id")
    rows = []
    for task_id, group in issues.sort_values("score", ascending=False, kind="stable").groupby("task_id", sort=False):
        worst = group.iloc[0]
        mine = by_task.get_group(task_id) if task_id in by_task.groups else answers.head(0)
        rows.append({"task_id": int(task_id), "score": float(worst["score"]), "check": worst["check"],
                     "checks": sorted(set(group["check"])), "detail": worst["detail"],
                     "prompt": mine["prompt"].iloc[0] if len(mine) else "",
                     "response": str(in_force.get(task_id, "")), "n_answers": int(len(mine)),
                     "answers": [{"annotator": a, "response": r} for a, r in zip(mine["annotator"], mine["response"])]})
    return pd.DataFrame(rows, columns=columns).sort_values("score", ascending=False, kind="stable",
                                                           ignore_index=True)
