"""Cross-validated probabilities from the fine-tuned model: K trainings, each scoring only the fold it never saw.

A run's probabilities on its own training rows are not out of sample: the model has seen those labels, the
wrong ones included, so the label-quality checks cannot use them. This trains the same classifier as a run
(the [train] settings: fast head, then LoRA with early stopping on a validation share) once per fold and
keeps each fold's held-out probabilities. The (N, K) result goes to `studio.quality.run_quality(pred_probs=...)`,
which compares it with its own candidates by log-loss (as "external") and averages it into the ensemble.

It costs K trainings: minutes on a GPU, long on a CPU. The app and `studio crossval` run it as a background job
(training/jobs.py, kind "crossval"); `cross_val_probs` is the in-process API.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from studio.errors import DataError
from studio.models import resolve_model_path
from studio.types import ProgressFn
from training.config import TrainConfig
from training.data import CuratedData
from training.train import ShouldStop, TrainingCancelled, _train_into

#: Share of each fold's training rows held out for early stopping and the fast-head-or-LoRA choice, as in a run.
VALIDATION_SHARE = 0.1


def _validation_rows(rows: np.ndarray, labels: np.ndarray, *, seed: int) -> np.ndarray:
    """About VALIDATION_SHARE of `rows`, stratified; classes with fewer than 5 rows give none (they are
    needed for training)."""
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels[rows]):
        members = rows[labels[rows] == c]
        if len(members) >= 5:
            picked.append(rng.choice(members, size=max(1, round(VALIDATION_SHARE * len(members))), replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=int)


def cross_val_probs(texts: Sequence[str], labels: Any, class_names: Sequence[str], *, work_root: str | Path,
                    config: TrainConfig | None = None, folds: int = 5, seed: int = 0,
                    cache_dir: str | Path | None = None, progress: ProgressFn | None = None,
                    should_stop: ShouldStop | None = None, callbacks: Sequence[Any] = (),
                    on_fold: Any = None, exclude: Any = None) -> tuple[np.ndarray, list[str]]:
    """(N, K) probabilities, row i from the model trained without i's fold; and warnings for the user.

    texts: N strings; labels: (N,) class indices into class_names. work_root: scratch space, one
    `.crossval-<fold>` folder at a time, removed after each fold. progress(done, total) counts optimisation
    steps over all folds as they become known; on_fold(i, k) is called as fold i (1-based) of k starts.
    exclude: (N,) bool, rows no model learns from (labels the checks flagged); they are still scored.
    Raises EmptyDataError/DataError (bad labels) before any model loads, TrainingCancelled when should_stop().
    """
    from studio.probabilities import make_folds, validate_labels

    texts = [str(t) for t in texts]
    y = validate_labels(labels, len(class_names), n_rows=len(texts))
    fold_list, warnings = make_folds(y, folds=folds, seed=seed)
    if exclude is not None:
        excluded = np.asarray(exclude, dtype=bool)
        if excluded.shape != y.shape:
            raise DataError(f"exclude has shape {excluded.shape}; expected {y.shape}, one flag per label.",
                            hint="pass a boolean mask over exactly these tasks")
        fold_list = [(train[~excluded[train]], test) for train, test in fold_list]
    cfg = config or TrainConfig()
    model_path = resolve_model_path(cfg.base_model)
    out = np.zeros((len(y), len(class_names)))

    def rows(index: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"task_id": index, "text": [texts[i] for i in index], "label": y[index]})

    for i, (train, test) in enumerate(fold_list):
        if should_stop is not None and should_stop():
            raise TrainingCancelled(f"Cross-validation was cancelled before fold {i + 1} of {len(fold_list)}.")
        if on_fold is not None:
            on_fold(i + 1, len(fold_list))
        validation = _validation_rows(train, y, seed=seed + i)
        curated = CuratedData(train=rows(np.setdiff1d(train, validation)), validation=rows(validation),
                              test=rows(test), class_names=[str(c) for c in class_names],
                              version_id=f"crossval-fold{i + 1}")

        def fold_progress(done: int, total: int, _i: int = i) -> None:
            if progress is not None and total:  # later folds are about as long as this one
                progress(_i * total + done, len(fold_list) * total)

        work = Path(work_root) / f".crossval-{i + 1}"
        try:
            result = _train_into(work, curated, cfg, model_path, progress=fold_progress, should_stop=should_stop,
                                 callbacks=callbacks, cache_dir=cache_dir, run_id=f"crossval-fold{i + 1}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        out[test] = result["report_probs"]
    return out, warnings
