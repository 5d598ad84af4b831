"""Rebalancing of the train split: resample rows (imbalanced-learn) or compute class weights.

Only rows whose `split` is "train" are touched; validation and test keep their true class distribution, so
their scores stay honest. The registry `REBALANCERS` is what the UI lists and the CLI accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np
import pandas as pd

from studio.errors import ConfigError, DataError, did_you_mean
from studio.tasks import TaskKind


class Rebalancer:
    """One way to rebalance the train split.

    `plan(y, *, n_classes, seed)` gets y: (n,) int class indices of the train rows (0..n_classes-1) and
    returns (repeats, class_weights): repeats is (n,) ints >= 0, how many times each train row appears after
    rebalancing (1 everywhere = untouched); class_weights is a list of n_classes floats (higher = the loss
    counts that class more) or None.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def plan(self, y: np.ndarray, *, n_classes: int, seed: int) -> tuple[np.ndarray, list[float] | None]:
        raise NotImplementedError


class NoRebalance(Rebalancer):
    name = "none"
    description = "Keep the train split as labeled."

    def plan(self, y: np.ndarray, *, n_classes: int, seed: int) -> tuple[np.ndarray, list[float] | None]:
        return np.ones(len(y), dtype=np.int64), None


class _ImblearnRebalancer(Rebalancer):
    """Runs an imbalanced-learn sampler on row indices, so any column (text, ids) follows its row."""

    def _sampler(self, seed: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def plan(self, y: np.ndarray, *, n_classes: int, seed: int) -> tuple[np.ndarray, list[float] | None]:
        if len(np.unique(y)) < 2:
            return np.ones(len(y), dtype=np.int64), None  # one class: nothing to balance, imblearn refuses
        sampler = self._sampler(seed)
        sampler.fit_resample(np.arange(len(y)).reshape(-1, 1), y)
        return np.bincount(sampler.sample_indices_, minlength=len(y)).astype(np.int64), None


class RandomOver(_ImblearnRebalancer):
    name = "random_over"
    description = "Duplicate random rows of the smaller classes until every class matches the largest."

    def _sampler(self, seed: int):
        from imblearn.over_sampling import RandomOverSampler

        return RandomOverSampler(random_state=seed)


class RandomUnder(_ImblearnRebalancer):
    name = "random_under"
    description = "Drop random rows of the larger classes until every class matches the smallest."

    def _sampler(self, seed: int):
        from imblearn.under_sampling import RandomUnderSampler

        return RandomUnderSampler(random_state=seed)


class ClassWeight(Rebalancer):
    name = "class_weight"
    description = "Keep every row; weight the loss per class, n / (classes x count) ('balanced')."

    def plan(self, y: np.ndarray, *, n_classes: int, seed: int) -> tuple[np.ndarray, list[float] | None]:
        counts = np.bincount(y, minlength=n_classes).astype(float)
        present = counts > 0
        weights = np.ones(n_classes)  # a class absent from train has no loss term; 1.0 keeps the list neutral
        # Same formula as sklearn's compute_class_weight("balanced"), which refuses absent classes.
        weights[present] = len(y) / (present.sum() * counts[present])
        return np.ones(len(y), dtype=np.int64), [float(w) for w in weights]


REBALANCERS: dict[str, Rebalancer] = {r.name: r for r in (NoRebalance(), RandomOver(), RandomUnder(),
                                                            ClassWeight())}


def check_method(method: str, *, field_name: str = "method") -> Rebalancer:
    """Return the registered rebalancer for `method`, or raise ConfigError with a "did you mean"."""
    if method in REBALANCERS:
        return REBALANCERS[method]
    raise ConfigError(
        f"{field_name} = {method!r} is not a rebalancing method.{did_you_mean(method, REBALANCERS)}",
        hint=f"use one of: {', '.join(REBALANCERS)}",
    )


@dataclass
class BalanceResult:
    """After rebalancing.

    df: validation and test rows unchanged; train rows repeated or dropped per the method. Original row order
    is kept (a repeated row's copies are adjacent); the index is reset.
    class_weights: K floats in `class_names` order, or None when the method resamples instead.
    counts: one row per class (index `class`), columns `before` and `after` (train rows) for a side-by-side
    chart.
    """

    df: pd.DataFrame
    method: str
    class_weights: list[float] | None
    counts: pd.DataFrame


def rebalance(split_df: pd.DataFrame, *, kind: TaskKind, method: str = "none", seed: int = 0,
              class_names: Sequence[str] | None = None) -> BalanceResult:
    """Rebalance the train split of `split_df` (from `split_dataset`).

    split_df: rows with `split` and the kind's target column.
    method: a key of REBALANCERS. seed: the same input and seed give the same rows.
    class_names: label order for `class_weights` (default: sorted class names found in the data).

    Rows are resampled by the rarest class their target contains (the key the split stratifies on; rows with
    no class, e.g. sentences without entities, form their own stratum), and class weights are computed from
    class occurrences: each class weighs n / (classes x its count). For single-label data that is a row's
    label and the usual "balanced" weights.
    """
    rebalancer = check_method(method)
    if rebalancer.name != "none":
        kind.require("balance", what=f"Rebalancing ({method})")
    if "split" not in split_df.columns:
        raise DataError("The data has no 'split' column.", hint="run split_dataset() before rebalance()")
    kind.check_targets(split_df)
    is_train = (split_df["split"] == "train").to_numpy()
    train = split_df[is_train]
    class_lists = kind.row_classes(train[kind.target_column])
    found = sorted({x for row in class_lists for x in row})
    names = [str(c) for c in class_names] if class_names is not None else found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise DataError(f"Train labels {unknown[:5]} are not in class_names {names[:10]}.",
                        hint="pass the class names from the labeling config, or fix the labels")
    index = {c: i for i, c in enumerate(names)}
    none_key = len(names)  # rows without any class form their own stratum
    keys = kind.stratification_keys(train[kind.target_column])
    y = np.array([index.get(str(k), none_key) for k in keys], dtype=np.int64)
    has_none = bool((y == none_key).any())
    repeats, _ = rebalancer.plan(y, n_classes=len(names) + has_none, seed=seed)
    weights = None
    if rebalancer.name == "class_weight":
        occurrences = np.array([index[x] for row in class_lists for x in row], dtype=np.int64)
        _, weights = rebalancer.plan(occurrences, n_classes=len(names), seed=seed)

    all_repeats = np.ones(len(split_df), dtype=np.int64)
    all_repeats[is_train] = repeats
    out = split_df.iloc[np.repeat(np.arange(len(split_df)), all_repeats)].reset_index(drop=True)

    def train_counts(frame: pd.DataFrame) -> pd.Series:
        t = frame[frame["split"] == "train"]
        vals = pd.Series(kind.row_classes(t[kind.target_column]), dtype=object).explode().dropna().astype(str)
        return vals.value_counts().reindex(names, fill_value=0)

    counts = pd.DataFrame({"before": train_counts(split_df), "after": train_counts(out)}).astype(int)
    counts.index.name = "class"
    return BalanceResult(df=out, method=rebalancer.name, class_weights=weights, counts=counts)
