"""People judge the outputs: pairwise comparison of two models' answers in a Label Studio evaluation project.

For held-out prompts, two answers (the base model vs a run, or run A vs run B) go into a project with
labeling_configs/pairwise.xml. Which system is shown as "A" is drawn at random per task (seeded); the mapping is
kept by the studio (<project state>/evaluations/<id>.json), and the task data holds only an opaque item key, so
judges cannot see which model wrote what. After a sync of that project, `comparison_results` gives the win
rate of each side with a 95% bootstrap interval over prompts, the ties, and how often judges agree.

Pure functions plus a small JSON store; creating the project and syncing it is the evaluation stage's
(studio/stages/evaluation.py).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from studio.errors import DataError, EmptyDataError

CHOICES = {"A is better": "A", "Tie": "tie", "B is better": "B"}
CONFIG = Path(__file__).resolve().parents[1] / "labeling_configs" / "pairwise.xml"


@dataclass
class Comparison:
    """One evaluation project. items: one per task: item (the key in the task data), prompt, left (the system
    shown as answer A), right (as answer B)."""

    id: str
    system_a: str  # e.g. "base" or a run id
    system_b: str
    project_id: int = 0  # the Label Studio evaluation project
    project_title: str = ""
    source_project: str = ""  # the studio project the prompts come from
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    items: list[dict[str, str]] = field(default_factory=list)


def build_comparison(prompts: list[str], answers_a: list[str], answers_b: list[str], *, system_a: str,
                     system_b: str, seed: int = 0) -> tuple[Comparison, list[dict[str, Any]]]:
    """(the comparison record, Label Studio tasks): sides randomised per prompt with `seed`; prompts where the
    two answers are identical are left out (nothing to judge)."""
    if not (len(prompts) == len(answers_a) == len(answers_b)):
        raise DataError("prompts and both answer lists must have the same length.")
    if system_a == system_b:
        raise DataError(f"Both sides are {system_a!r}: pick two different models to compare.")
    rng = np.random.default_rng(seed)
    stamp = secrets.token_hex(3)
    comparison = Comparison(id=f"eval-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{stamp}", system_a=system_a,
                            system_b=system_b)
    tasks = []
    for i, (prompt, a, b) in enumerate(zip(prompts, answers_a, answers_b)):
        if " ".join(a.split()) == " ".join(b.split()):
            continue
        swap = bool(rng.random() < 0.5)
        item = f"{stamp}-{i}"
        left, right = (system_b, system_a) if swap else (system_a, system_b)
        comparison.items.append({"item": item, "prompt": prompt, "left": left, "right": right})
        shown_a, shown_b = (b, a) if swap else (a, b)
        tasks.append({"data": {"prompt": prompt, "answer_a": shown_a, "answer_b": shown_b, "item": item}})
    if not tasks:
        raise EmptyDataError("The two models gave the same answer to every prompt: nothing to compare.",
                             hint="compare against another run, or evaluate more prompts")
    return comparison, tasks


class ComparisonStore:
    """<project state>/evaluations/<comparison id>.json, one file per comparison."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def save(self, comparison: Comparison) -> None:
        from studio.atomic import write_json_atomic

        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.folder / f"{comparison.id}.json", asdict(comparison))

    def load(self, comparison_id: str) -> Comparison:
        file = self.folder / f"{comparison_id}.json"
        if not file.exists():
            known = ", ".join(c.id for c in self.list()) or "none yet"
            raise DataError(f"No comparison {comparison_id!r} (known: {known}).",
                            hint="start one on the Runs page or with `studio compare RUN`")
        return Comparison(**json.loads(file.read_text(encoding="utf-8")))

    def list(self) -> list[Comparison]:
        if not self.folder.exists():
            return []
        found = [Comparison(**json.loads(f.read_text(encoding="utf-8"))) for f in sorted(self.folder.glob("*.json"))]
        return sorted(found, key=lambda c: c.created_at, reverse=True)


@dataclass
class ComparisonResults:
    """judgments: one row per (task, judge): item, judge, choice ("A"/"tie"/"B" as shown), winner (a system or
    "tie"). wins/ties: counts over judgments; win_rate[system] = (wins + ties / 2) / judgments with a 95%
    bootstrap interval over prompts (interval[system] = (low, high)); agreement: the share of pairs of judges
    of the same task who chose the same (None with no task judged twice); tasks_judged / tasks_total."""

    system_a: str
    system_b: str
    judgments: pd.DataFrame
    wins: dict[str, int]
    ties: int
    win_rate: dict[str, float]
    interval: dict[str, tuple[float, float]]
    agreement: float | None
    tasks_judged: int
    tasks_total: int


def comparison_results(comparison: Comparison, tasks: pd.DataFrame, annotations: pd.DataFrame, *,
                       resamples: int = 2000, seed: int = 0) -> ComparisonResults:
    """Results from a snapshot of the evaluation project (its tasks and annotations tables)."""
    items = {row["item"]: row for row in comparison.items}
    item_of = {int(t.task_id): json.loads(t.data).get("item") for t in tasks.itertuples(index=False)}
    rows = []
    for a in annotations[~annotations["was_cancelled"]].itertuples(index=False):
        item = items.get(item_of.get(int(a.task_id)))
        labels = [CHOICES[x] for x in list(a.labels) if x in CHOICES]
        if item is None or not labels:
            continue
        shown = labels[0]
        winner = "tie" if shown == "tie" else (item["left"] if shown == "A" else item["right"])
        rows.append({"item": item["item"], "judge": a.annotator, "choice": shown, "winner": winner})
    judgments = pd.DataFrame(rows, columns=["item", "judge", "choice", "winner"])
    systems = (comparison.system_a, comparison.system_b)
    wins = {s: int((judgments["winner"] == s).sum()) for s in systems}
    ties = int((judgments["winner"] == "tie").sum())
    n = len(judgments)
    rate = {s: (wins[s] + ties / 2) / n if n else float("nan") for s in systems}
    interval = {s: _bootstrap(judgments, s, resamples=resamples, seed=seed) for s in systems}
    return ComparisonResults(system_a=comparison.system_a, system_b=comparison.system_b, judgments=judgments,
                             wins=wins, ties=ties, win_rate=rate, interval=interval,
                             agreement=_agreement(judgments), tasks_judged=int(judgments["item"].nunique()),
                             tasks_total=len(comparison.items))


def _points(judgments: pd.DataFrame, system: str) -> pd.Series:
    return judgments["winner"].map(lambda w: 1.0 if w == system else 0.5 if w == "tie" else 0.0)


def _bootstrap(judgments: pd.DataFrame, system: str, *, resamples: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of the win rate, resampling prompts (a prompt's judges stay together)."""
    if judgments.empty:
        return float("nan"), float("nan")
    per_item = judgments.assign(points=_points(judgments, system)).groupby("item")["points"].agg(["sum", "count"])
    sums, counts = per_item["sum"].to_numpy(), per_item["count"].to_numpy()
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(per_item), size=(resamples, len(per_item)))
    rates = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    low, high = np.percentile(rates, [2.5, 97.5])
    return float(low), float(high)


def _agreement(judgments: pd.DataFrame) -> float | None:
    """Share of agreeing pairs among all pairs of judges of the same task (on the winner, ties included)."""
    agree = pairs = 0
    for _, group in judgments.groupby("item"):
        winners = group["winner"].tolist()
        for i in range(len(winners)):
            for j in range(i + 1, len(winners)):
                pairs += 1
                agree += winners[i] == winners[j]
    return agree / pairs if pairs else None
