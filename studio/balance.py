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


def rebalance(split_df: pd.DataFrame, *, method: str = "none", seed: int = 0,
              class_names: Sequence[str] | None = None) -> BalanceResult:
    """Rebalance the train split of `split_df` (from `split_dataset`).

    split_df: rows with `split` and `label` (str) or `labels` (list[str]).
    method: a key of REBALANCERS. seed: the same input and seed give the same rows.
    class_names: label order for `class_weights` (default: sorted class names found in the data).

    Multi-label rows are resampled by their rarest label (the same key the split stratifies on), and
    class weights are computed from label occurrences: each label weighs n / (labels x its count).
    """
    rebalancer = check_method(method)
    if "split" not in split_df.columns:
        raise DataError("The data has no 'split' column.", hint="run split_dataset() before rebalance()")
    multi = "labels" in split_df.columns and "label" not in split_df.columns
    is_train = (split_df["split"] == "train").to_numpy()
    train = split_df[is_train]
    if multi:
        label_lists = [[str(x) for x in v] if isinstance(v, (list, tuple, np.ndarray)) else []
                       for v in train["labels"]]
        found = sorted({x for labs in label_lists for x in labs})
    else:
        found = sorted(train["label"].astype(str).unique())
    names = [str(c) for c in class_names] if class_names is not None else found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise DataError(f"Train labels {unknown[:5]} are not in class_names {names[:10]}.",
                        hint="pass the class names from the labeling config, or fix the labels")
    index = {c: i for i, c in enumerate(names)}
    if multi:
        freq = np.zeros(len(names), dtype=np.int64)
        for labs in label_lists:
            for x in labs:
                freq[index[x]] += 1
        none_key = len(names)  # rows without labels form their own stratum
        y = np.array([min((index[x] for x in labs), key=lambda i: (freq[i], i)) if labs else none_key
                      for labs in label_lists], dtype=np.int64)
        repeats, _ = rebalancer.plan(y, n_classes=len(names) + 1, seed=seed)
        weights = None
        if rebalancer.name == "class_weight":
            occurrences = np.repeat(np.arange(len(names)), freq)  # one entry per label occurrence
            _, weights = rebalancer.plan(occurrences, n_classes=len(names), seed=seed)
    else:
        y = train["label"].astype(str).map(index).to_numpy(dtype=np.int64)
        repeats, weights = rebalancer.plan(y, n_classes=len(names), seed=seed)

    all_repeats = np.ones(len(split_df), dtype=np.int64)
    all_repeats[is_train] = repeats
    out = split_df.iloc[np.repeat(np.arange(len(split_df)), all_repeats)].reset_index(drop=True)

    def train_counts(frame: pd.DataFrame) -> pd.Series:
        t = frame[frame["split"] == "train"]
        vals = t["labels"].explode().dropna().astype(str) if multi else t["label"].astype(str)
        return vals.value_counts().reindex(names, fill_value=0)

    counts = pd.DataFrame({"before": train_counts(split_df), "after": train_counts(out)}).astype(int)
    counts.index.name = "class"
    return BalanceResult(df=out, method=rebalancer.name, class_weights=weights, counts=counts)
