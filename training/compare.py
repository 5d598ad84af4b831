"""Comparing runs on the test tasks they share.

Each data version's test set grows as tasks are labeled (studio/split_ledger.py keeps old test tasks in test
and puts some new ones there), and a re-split replaces it; so two runs' recorded scores are often measured on
different test sets. Every run therefore keeps its per-task predictions (`predictions.parquet`: task_id,
split, truth, pred, for validation and the split it reports on; generation runs keep examples.parquet), and
`common_scores` scores a set of runs again on the tasks all of them predicted with the same truth: the only
figures that compare them fairly.

truth / pred per task kind: single_label, class indices; multi_label, 0/1 lists; spans, BIO tag lists (one per
word); generation, the reference and each run's answer's ROUGE-L.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from training.artefacts import EXAMPLES_FILE, PREDICTIONS_FILE

#: fewer shared tasks than this and the common-set figures are said to be too few to compare.
MIN_COMMON = 20


@dataclass
class CommonScores:
    """runs' scores on the `n` tasks of `split` they share. scores: one row per run (run, then the kind's
    metrics); own: each run's number of tasks in that split; note: what to tell the user."""

    split: str
    n: int
    own: dict[str, int]
    scores: pd.DataFrame
    note: str


def _key(value: Any) -> str:
    return json.dumps(value.tolist() if hasattr(value, "tolist") else value, sort_keys=True, default=str)


def _read(run_path: Path, split: str) -> tuple[str, pd.DataFrame, list[str]]:
    """(task kind, rows of that split: task_id, truth, pred or the answer's rouge_l, class or type names)."""
    file = run_path / "labels.json"
    labels = json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}
    task = str(labels.get("task") or "single_label")
    if task == "generation":
        file = run_path / EXAMPLES_FILE
        frame = pd.read_parquet(file) if file.exists() else pd.DataFrame(columns=["task_id", "reference"])
        frame = frame.rename(columns={"reference": "truth"})
        frame["pred"] = frame.get("fine_tuned_rouge_l", pd.Series(dtype=float))
        return task, frame[["task_id", "truth", "pred"]], []
    file = run_path / PREDICTIONS_FILE
    if not file.exists():
        return task, pd.DataFrame(columns=["task_id", "truth", "pred"]), list(labels.get("class_names", []))
    frame = pd.read_parquet(file)
    return task, frame[frame["split"] == split][["task_id", "truth", "pred"]], list(labels.get("class_names", []))


def score_rows(task: str, truth: Sequence[Any], pred: Sequence[Any], names: list[str]) -> dict[str, float]:
    """The kind's headline figures on these rows."""
    from sklearn.metrics import accuracy_score, f1_score

    if task == "generation":
        return {"ROUGE-L": float(np.mean(np.asarray(pred, dtype=float))) if len(pred) else float("nan")}
    if task == "spans":
        from training.tokens import entity_summary

        s = entity_summary([list(t) for t in truth], [list(p) for p in pred], types=names)
        return {"entity F1": s["entity_f1"], "precision": s["precision"], "recall": s["recall"]}
    y = np.asarray([np.asarray(t) for t in truth])
    p = np.asarray([np.asarray(v) for v in pred])
    return {"accuracy": float(accuracy_score(y, p)),
            "macro-F1": float(f1_score(y, p, average="macro", zero_division=0))}


def common_scores(runs: dict[str, Path | None], *, split: str = "test") -> CommonScores:
    """Score each run (id -> run folder) on the tasks of `split` that every run predicted with the same truth.

    Runs of different task kinds cannot share tasks: they are refused by the empty result's note."""
    from studio.errors import TrainingError

    for run, path in runs.items():
        if path is None:
            raise TrainingError(f"Run {run} has no model folder (it did not succeed): there is nothing to score.",
                                hint="compare succeeded runs (studio runs lists them)")
    read = {run: _read(Path(path), split) for run, path in runs.items()}
    kinds = {task for task, _, _ in read.values()}
    own = {run: int(len(frame)) for run, (_, frame, _) in read.items()}
    if len(kinds) > 1:
        return CommonScores(split, 0, own, pd.DataFrame(), "These runs are of different task kinds "
                            f"({', '.join(sorted(kinds))}): they share no test tasks.")
    missing = [run for run, n in own.items() if n == 0]
    if missing:
        return CommonScores(split, 0, own, pd.DataFrame(), f"{', '.join(missing)} kept no per-task predictions of "
                            f"its {split} split (runs trained before they were kept): it cannot be scored on the "
                            "tasks the others share.")
    truths = {run: dict(zip(frame["task_id"].astype(int), map(_key, frame["truth"])))
              for run, (_, frame, _) in read.items()}
    first, *rest = truths.values()
    shared = sorted(t for t, truth in first.items() if all(other.get(t) == truth for other in rest))
    rows = []
    for run, (task, frame, names) in read.items():
        chosen = frame.drop_duplicates("task_id").set_index(frame.drop_duplicates("task_id")["task_id"].astype(int))
        chosen = chosen.loc[shared]
        rows.append({"run": run, **(score_rows(task, chosen["truth"].tolist(), chosen["pred"].tolist(), names)
                                    if shared else {})})
    everyone = set.intersection(*(set(t) for t in truths.values()))
    relabeled = len(everyone) - len(shared)
    if not shared:
        note = f"These runs share no {split} tasks with the same label: their scores cannot be compared."
    else:
        note = (f"Scored again on the {len(shared)} {split} tasks all of them predicted"
                + (f" ({relabeled} shared task(s) left out: relabeled in between)" if relabeled else "")
                + (f"; fewer than {MIN_COMMON} tasks: too few for a difference to mean much."
                   if len(shared) < MIN_COMMON else "."))
    return CommonScores(split, len(shared), own, pd.DataFrame(rows), note)
