"""Cross-validated probabilities from the fine-tuned model: K trainings, each scoring only the fold it never saw.

A run's probabilities on its own training rows are not out of sample: the model has seen those labels, the
wrong ones included, so the label-quality checks cannot use them. This trains the same classifier as a run
(the [train] settings: fast head, then LoRA with early stopping on a validation share) once per fold and
keeps each fold's held-out probabilities. The (N, K) result goes to `studio.quality.run_quality(pred_probs=...)`,
which compares it with its own candidates by log-loss (as "external") and averages it into the ensemble.

It costs K trainings: minutes on a GPU, long on a CPU. The app and `studio crossval` run it as a background job
(`start_crossval_job`: launched through training/job_control.py, run by training/jobs.py as kind "crossval",
same lock as training); `cross_val_probs` is the in-process API.
"""

from __future__ import annotations

import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from studio.models import resolve_model_path
from studio.types import ProgressFn
from training.config import TrainConfig
from training.data import CuratedData
from training.job_control import JobInfo, launch_job
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
    from studio.probabilities import exclude_from_training, make_folds, validate_labels

    texts = [str(t) for t in texts]
    y = validate_labels(labels, len(class_names), n_rows=len(texts))
    fold_list, warnings = make_folds(y, folds=folds, seed=seed, class_names=class_names)
    if exclude is not None:
        fold_list, _ = exclude_from_training(fold_list, y, exclude)
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


# -- as a background job (training/jobs.py runs the request in its own process) -------------------------------
def start_crossval_job(rows: pd.DataFrame, class_names: list[str], *, output: str | Path, config: TrainConfig,
                       jobs_root: str | Path, folds: int = 5, seed: int = 0,
                       cache_dir: str | Path | None = None, meta: dict[str, Any] | None = None) -> JobInfo:
    """Start cross-validating the fine-tuned model in a background process; returns its JobInfo.

    rows: a DataFrame with task_id, text, label (index into class_names) and optionally exclude (bool: rows the
    folds score but do not learn from, e.g. labels the checks flagged). The job writes the (N, K)
    probabilities with studio.assess.save_crossval under `output` (meta is stored with them). It shares the
    training lock: one job of either kind at a time (JobAlreadyRunning). Raises EmptyDataError/DataError at once
    for bad labels.
    """
    from studio.probabilities import validate_labels

    validate_labels(rows["label"].to_numpy(), len(class_names), n_rows=len(rows))
    root = Path(jobs_root)
    root.mkdir(parents=True, exist_ok=True)
    inputs = root / f".crossval-input-{secrets.token_hex(4)}.parquet"
    rows[[c for c in ("task_id", "text", "label", "exclude") if c in rows.columns]].to_parquet(inputs)
    try:
        return launch_job(root, {
            "kind": "crossval", "rows": str(inputs.resolve()), "class_names": list(class_names),
            "output": str(Path(output).resolve()), "config": config.to_dict(), "folds": folds, "seed": seed,
            "meta": meta or {}, "cache_dir": str(Path(cache_dir).resolve()) if cache_dir else None,
        }, move_into_job=inputs)
    except BaseException:
        inputs.unlink(missing_ok=True)
        raise


def run_crossval_request(request: dict[str, Any], *, work_root: Path, should_stop: ShouldStop, on_fold: Any,
                         callbacks: Sequence[Any], job_id: str) -> str:
    """What a crossval job does with its request.json: K trainings, then the probabilities stored where the
    request says (studio.assess.save_crossval). Returns the stored file."""
    from studio.assess import save_crossval

    rows = pd.read_parquet(request["rows"])
    cfg = TrainConfig.from_dict(request["config"])
    probs, warnings = cross_val_probs(
        rows["text"].tolist(), rows["label"].to_numpy(), request["class_names"], work_root=work_root, config=cfg,
        folds=int(request["folds"]), seed=int(request["seed"]), cache_dir=request.get("cache_dir"),
        should_stop=should_stop, on_fold=on_fold, callbacks=callbacks,
        exclude=rows["exclude"].to_numpy() if "exclude" in rows.columns else None)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    meta = dict(request.get("meta") or {}, folds=int(request["folds"]), base_model=cfg.base_model,
                method=cfg.method, epochs=cfg.epochs, created=created, job_id=job_id, warnings=warnings)
    return str(save_crossval(Path(request["output"]), rows["task_id"].to_numpy(), rows["label"].to_numpy(), probs,
                             meta))
