"""The human-evaluation stage of a workspace (`ws.evaluation`): "Compare in Label Studio" for instruction ->
response projects. Two systems' answers to the same held-out prompts (the base model vs a run, from the run's
evaluation examples; or run A vs run B, on the prompts both evaluated) go into a new Label Studio project with
labeling_configs/pairwise.xml; after judges have answered, `results` syncs that project and computes the win
rates (studio/evaluation.py). Comparisons and the evaluation projects' snapshots live under
<project state>/evaluations/, apart from the project's own snapshots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from studio.errors import DataError, UnsupportedTaskKind
from studio.evaluation import CONFIG, Comparison, ComparisonResults, ComparisonStore, build_comparison
from studio.labeling import parse_labeling_config
from studio.snapshot import SnapshotStore

if TYPE_CHECKING:
    from studio.workspace import Workspace

BASE = "base"


class EvaluationService:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    @property
    def store(self) -> ComparisonStore:
        return ComparisonStore(self.ws.folder("evaluations"))

    @property
    def snapshots(self) -> SnapshotStore:
        return SnapshotStore(self.ws.folder("evaluations") / "snapshots")

    def examples(self, run_id: str) -> pd.DataFrame:
        """A generation run's evaluation examples: prompt, reference, base, fine_tuned (one row per test prompt)."""
        from training.runs import RunRegistry

        run = RunRegistry(self.ws.runs_root).get(run_id)
        file = run.path / "examples.parquet"
        if not file.exists():
            raise DataError(f"Run {run_id} has no evaluation examples (examples.parquet): it is not an instruction "
                            "-> response run, or it evaluated no prompts ([sft] eval_prompts = 0).",
                            hint="pick a run of this project trained with eval_prompts > 0")
        return pd.read_parquet(file)

    def answers(self, run_a: str, run_b: str = BASE) -> tuple[list[str], list[str], list[str]]:
        """(prompts, answers of run_a, answers of run_b): run_b "base" = the base model's answers in run_a's
        examples; another run: the prompts both runs evaluated."""
        a = self.examples(run_a)
        if run_b == BASE:
            return a["prompt"].tolist(), a["fine_tuned"].tolist(), a["base"].tolist()
        b = self.examples(run_b)
        both = a[["prompt", "fine_tuned"]].merge(b[["prompt", "fine_tuned"]], on="prompt", suffixes=("_a", "_b"))
        if both.empty:
            raise DataError(f"Runs {run_a} and {run_b} evaluated no prompt in common (different test sets).",
                            hint="compare each against the base model, or train both on one data version")
        return both["prompt"].tolist(), both["fine_tuned_a"].tolist(), both["fine_tuned_b"].tolist()

    def compare(self, run_a: str, run_b: str = BASE, *, seed: int = 0) -> Comparison:
        """Create the evaluation project in Label Studio and import one task per prompt (sides randomised)."""
        ws = self.ws
        project, _ = ws.project_or_stored()
        kind = parse_labeling_config(project.label_config).kind
        if kind.name != "generation":
            raise UnsupportedTaskKind(f"Comparing models' answers in Label Studio is for instruction -> response "
                                      f"projects; '{project.title}' is a {kind.description} project.",
                                      hint="compare classifiers on the Runs page's scores instead")
        prompts, first, second = self.answers(run_a, run_b)
        comparison, tasks = build_comparison(prompts, first, second, system_a=run_a, system_b=run_b, seed=seed)
        title = f"Compare {run_a} vs {run_b} · {project.title}"
        created = ws.client.create_project(title, CONFIG.read_text(encoding="utf-8"))
        ws.client.import_tasks(created.id, tasks)
        comparison.project_id, comparison.project_title = created.id, title
        comparison.source_project = project.title
        self.store.save(comparison)
        return comparison

    def results(self, comparison_id: str, *, sync: bool = True) -> ComparisonResults:
        """Win rates of a comparison, from a fresh sync of its project (or the newest stored one)."""
        from studio.evaluation import comparison_results
        from studio.sync import sync_project

        comparison = self.store.load(comparison_id)
        if sync:
            snapshot = sync_project(self.ws.client, self.snapshots, comparison.project_id).snapshot
        else:
            snapshot = self.snapshots.latest(comparison.project_id)
            if snapshot is None:
                raise DataError(f"Comparison {comparison_id} has not been synced yet.",
                                hint="sync it (the Runs page's button, or `studio compare --results ID`)")
        return comparison_results(comparison, snapshot.tasks, snapshot.annotations)
