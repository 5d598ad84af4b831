"""Active learning: which unlabeled tasks should annotators label next.

Query strategies form a registry (`STRATEGIES`): the UI lists it, the CLI accepts its keys. Each takes the
model's pred_probs on the unlabeled pool (and, for the diverse ones, the pool's embeddings) and returns the
pool indices to label next. `confidence_score` is the per-task confidence (the margin; lower = less certain).
`fit_learning_curve` forecasts how many labels a target score needs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from studio.errors import ConfigError, DataError, did_you_mean
from studio.types import Embeddings, PredProbs


def _check_probs(pred_probs: PredProbs | None, *, name: str) -> np.ndarray:
    if pred_probs is None:
        raise DataError(f"Strategy '{name}' needs pred_probs, got None.",
                        hint="train a model first, or use the 'cold_start' strategy")
    p = np.asarray(pred_probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise DataError(f"pred_probs has shape {p.shape}, expected (N, K) with K >= 2 classes.",
                        hint="pass the model's class probabilities for each unlabeled task")
    if not np.isfinite(p).all() or (p < -1e-6).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise DataError("pred_probs rows must be finite, non-negative and sum to 1.",
                        hint="apply softmax (single-label) to the model's logits before querying")
    return p


def _check_n(n: int, size: int) -> int:
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise DataError(f"n = {n!r} is invalid: expected a number of tasks >= 0.", hint="ask for e.g. n=50")
    return min(int(n), size)


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n highest scores; equal scores go to the lower index (deterministic)."""
    return np.lexsort((np.arange(len(scores)), -scores))[:n].astype(np.int64)


def _sorted_probs(p: np.ndarray) -> np.ndarray:
    return -np.sort(-p, axis=1)


class QueryStrategy:
    """A way to choose the next tasks to label.

    Contract (shared by every strategy):
    - `scores(pred_probs)`: pred_probs is (N, K), rows summing to 1. Returns (N,) floats in [0, 1] where
      HIGHER = MORE UNCERTAIN (more worth labeling). Strategies that do not use the model score all 0.
    - `select(pred_probs, *, n, embeddings=None, seed=0)`: returns min(n, N) unique pool indices (int64),
      most useful first. embeddings: (N, D) L2-normalised vectors of the same pool, needed when
      `needs_embeddings`. Equal scores are broken by the lower index; randomness comes only from `seed`.
    - `needs_model`: False when the strategy works before any model exists (pred_probs may be None).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs_model: ClassVar[bool] = True
    needs_embeddings: ClassVar[bool] = False

    def scores(self, pred_probs: PredProbs) -> np.ndarray:
        raise NotImplementedError

    def select(self, pred_probs: PredProbs | None, *, n: int, embeddings: Embeddings | None = None,
               seed: int = 0) -> np.ndarray:
        p = _check_probs(pred_probs, name=self.name)
        return _top(self.scores(p), _check_n(n, len(p)))

    def _embeddings(self, embeddings: Embeddings | None, size: int | None) -> np.ndarray:
        if embeddings is None:
            raise DataError(f"Strategy '{self.name}' needs embeddings of the unlabeled pool, got None.",
                            hint="pass studio.embeddings.encode(pool_texts) as embeddings=")
        e = np.asarray(embeddings, dtype=np.float32)
        if e.ndim != 2 or (size is not None and len(e) != size):
            want = size if size is not None else "N"
            raise DataError(f"embeddings has shape {e.shape}, expected ({want}, D).",
                            hint="embed exactly the tasks whose pred_probs you pass, in the same order")
        return e


class LeastConfidence(QueryStrategy):
    name = "least_confidence"
    description = "Tasks whose top class has the lowest probability."

    def scores(self, pred_probs: PredProbs) -> np.ndarray:
        p = _check_probs(pred_probs, name=self.name)
        return 1.0 - p.max(axis=1)


class Margin(QueryStrategy):
    name = "margin"
    description = "Tasks whose two most likely classes are closest (smallest margin)."

    def scores(self, pred_probs: PredProbs) -> np.ndarray:
        s = _sorted_probs(_check_probs(pred_probs, name=self.name))
        return 1.0 - (s[:, 0] - s[:, 1])


class Entropy(QueryStrategy):
    name = "entropy"
    description = "Tasks whose predicted distribution has the highest entropy."

    def scores(self, pred_probs: PredProbs) -> np.ndarray:
        p = _check_probs(pred_probs, name=self.name)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
        return np.clip(h / np.log(p.shape[1]), 0.0, 1.0)  # normalised so it is comparable across K


class DiverseMargin(QueryStrategy):
    """Batch mode: the most uncertain pool (top pool_factor * n by margin), clustered into n groups on the
    embeddings with k-means; the most uncertain task of each cluster. Avoids spending a batch on n copies of
    the same confusion. The default pool_factor is the best of the values bench/active.py compared on banking77
    (5 seeds); smaller and larger ones were worse (figures in the README's Benchmarks)."""

    name = "diverse_margin"
    description = "Most uncertain tasks by margin, spread over k-means clusters of their embeddings."
    needs_embeddings = True
    pool_factor: int = 4

    def scores(self, pred_probs: PredProbs) -> np.ndarray:
        return Margin().scores(pred_probs)

    def select(self, pred_probs: PredProbs | None, *, n: int, embeddings: Embeddings | None = None,
               seed: int = 0) -> np.ndarray:
        p = _check_probs(pred_probs, name=self.name)
        e = self._embeddings(embeddings, len(p))
        n = _check_n(n, len(p))
        s = self.scores(p)
        pool = _top(s, min(len(p), self.pool_factor * n))
        if n == 0 or len(pool) <= n:
            return pool[:n]
        clusters = _kmeans(e[pool], n, seed=seed)
        picked = []
        for c in np.unique(clusters):
            members = pool[clusters == c]  # pool is ordered most uncertain first, so members[0] is the best
            picked.append(members[0])
        picked_arr = np.array(picked, dtype=np.int64)
        if len(picked_arr) < n:  # k-means merged duplicates: top up with the next most uncertain
            rest = pool[~np.isin(pool, picked_arr)]
            picked_arr = np.concatenate([picked_arr, rest[: n - len(picked_arr)]])
        return picked_arr[_top(s[picked_arr], n)]


class RandomSampling(QueryStrategy):
    name = "random"
    description = "Uniformly random tasks (the reference every strategy should beat)."
    needs_model = False

    def scores(self, pred_probs: PredProbs) -> np.ndarray:
        return np.zeros(len(_check_probs(pred_probs, name=self.name)))

    def select(self, pred_probs: PredProbs | None, *, n: int, embeddings: Embeddings | None = None,
               seed: int = 0) -> np.ndarray:
        size = len(pred_probs) if pred_probs is not None else len(self._embeddings(embeddings, None))
        n = _check_n(n, size)
        return np.random.default_rng(seed).choice(size, size=n, replace=False).astype(np.int64)


class ColdStart(QueryStrategy):
    """No model yet: k-means with n clusters on the embeddings; the most typical task of each cluster
    (TypiClust, Hacohen et al. 2022: highest inverse mean distance to its nearest neighbours in the cluster).
    The first batch then covers the pool's topics instead of its most common one, with a task from the dense
    heart of each topic rather than an outlier or a point between two topics."""

    name = "cold_start"
    description = "Before any model: the most typical task of each k-means cluster of the embeddings."
    needs_model = False
    needs_embeddings = True
    neighbours: int = 20

    def scores(self, pred_probs: PredProbs) -> np.ndarray:
        return np.zeros(len(_check_probs(pred_probs, name=self.name)))

    def select(self, pred_probs: PredProbs | None, *, n: int, embeddings: Embeddings | None = None,
               seed: int = 0) -> np.ndarray:
        e = self._embeddings(embeddings, None if pred_probs is None else len(pred_probs))
        n = _check_n(n, len(e))
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        if n == len(e):
            return np.arange(n, dtype=np.int64)
        clusters = _kmeans(e, n, seed=seed)
        chosen = [int(members[np.argmax(_typicality(e[members], self.neighbours, seed=seed))])
                  for members in (np.flatnonzero(clusters == c) for c in np.unique(clusters))]
        if len(chosen) < n:  # k-means merged duplicates into fewer clusters: top up at random
            rest = np.setdiff1d(np.arange(len(e)), chosen)
            extra = np.random.default_rng(seed).choice(rest, size=n - len(chosen), replace=False)
            chosen.extend(int(i) for i in extra)
        return np.array(chosen, dtype=np.int64)


def _typicality(x: np.ndarray, k: int, *, seed: int, max_reference: int = 4096) -> np.ndarray:
    """(M,) typicality of each row of x (M, D): 1 / mean Euclidean distance to its k nearest other rows
    (fewer when M <= k). Higher = in a denser part of x. A single row gets 1.

    Neighbours are searched among at most `max_reference` rows (a seeded sample when M is larger) and in
    chunks, so a huge cluster (n=1 on a big pool) costs O(M * max_reference) time and bounded memory.
    """
    m = len(x)
    ref = np.arange(m) if m <= max_reference else np.sort(
        np.random.default_rng(seed).choice(m, size=max_reference, replace=False))
    k = min(k, len(ref) - 1)
    if k < 1:
        return np.ones(m)
    x = x.astype(np.float64)
    sq = (x * x).sum(axis=1)
    slot = np.full(m, -1)
    slot[ref] = np.arange(len(ref))  # where each row sits among the references, to skip itself
    out = np.empty(m)
    chunk = max(1, 2**22 // len(ref))
    for lo in range(0, m, chunk):
        rows = np.arange(lo, min(m, lo + chunk))
        d = np.sqrt(np.maximum(sq[rows, None] + sq[None, ref] - 2.0 * (x[rows] @ x[ref].T), 0.0))
        own = slot[rows]
        d[np.flatnonzero(own >= 0), own[own >= 0]] = np.inf
        out[rows] = 1.0 / (np.partition(d, k - 1, axis=1)[:, :k].mean(axis=1) + 1e-12)
    return out


def _kmeans(x: np.ndarray, k: int, *, seed: int) -> np.ndarray:
    """(M,) k-means cluster id of each row of x."""
    from sklearn.cluster import KMeans

    with warnings.catch_warnings():
        # Duplicate points can leave fewer distinct clusters than k; the callers handle that.
        warnings.simplefilter("ignore")
        km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(x)
    return km.labels_


#: What the app, the CLI and the workspace use unless told otherwise (the benchmark's best, bench/active.py).
DEFAULT_STRATEGY = "diverse_margin"

STRATEGIES: dict[str, QueryStrategy] = {s.name: s for s in (
    Margin(), LeastConfidence(), Entropy(), DiverseMargin(), RandomSampling(), ColdStart())}


def get_strategy(name: str) -> QueryStrategy:
    """The registered strategy called `name`; ConfigError with a "did you mean" otherwise."""
    if name in STRATEGIES:
        return STRATEGIES[name]
    raise ConfigError(f"Query strategy {name!r} is unknown.{did_you_mean(name, STRATEGIES)}",
                      hint=f"use one of: {', '.join(STRATEGIES)}")


def confidence_score(pred_probs: PredProbs, *, strategy: str = "margin") -> np.ndarray:
    """(N,) confidence in [0, 1] for each prediction; LOWER = LESS CERTAIN.

    It is 1 - strategy.scores(pred_probs): for "margin", top-1 minus top-2 probability. A push gives Label Studio
    the strategy's rank as the score instead (studio/pool.py); the ML backend's per-task predictions, which have no
    place in a pushed queue, carry this as their score.
    """
    s = get_strategy(strategy)
    if not s.needs_model:
        raise ConfigError(f"confidence_score(strategy={strategy!r}) needs a model-based strategy.",
                          hint="use 'margin', 'least_confidence' or 'entropy'")
    return np.clip(1.0 - s.scores(pred_probs), 0.0, 1.0)


# --- learning-curve forecast -------------------------------------------------------------------------------


@dataclass
class Forecast:
    """How many labels a target score needs, from the runs so far.

    labels_needed: point estimate (None when not reachable or not enough runs); low/high: an 80% band
    (None when it cannot be estimated; high may be inf when part of the band never reaches the target).
    method: "power_law" (score = a - b * n^-c, a = asymptote), "log_linear" (2 runs), or "none".
    reachable: False when the target is at or above the fitted asymptote (more labels of the same kind will
    not get there). message: one sentence for the UI.
    """

    target: float
    labels_needed: float | None
    low: float | None
    high: float | None
    method: str
    reachable: bool
    message: str
    asymptote: float | None = None
    params: tuple[float, ...] | None = None


def _power_law(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.power(n, -c)


def _invert(a: float, b: float, c: float, target: float) -> float:
    if target >= a or b <= 0 or c <= 0:
        return float("inf")
    return float((b / (a - target)) ** (1.0 / c))


def fit_learning_curve(labels_used: Sequence[float], scores: Sequence[float], *, target: float,
                       upper: float | None = 1.0, seed: int = 0) -> Forecast:
    """Fit score = a - b * n^-c to (labels used, score) runs and forecast the labels for `target`.

    labels_used, scores: one value per run (any order, at least 1 run). upper: the best score possible
    (1.0 for accuracy/F1), bounding the asymptote; None for no bound.
    With 3+ runs: curve_fit, band from 1000 draws of the fit covariance (10th-90th percentile). With 2 runs:
    a straight line in log(n), no band and no asymptote. With 1 run: no forecast.
    If a run already reached the target, labels_needed is the fewest labels that did.
    """
    n = np.asarray(labels_used, dtype=float)
    y = np.asarray(scores, dtype=float)
    if n.shape != y.shape or n.ndim != 1 or len(n) == 0:
        raise DataError(f"labels_used ({n.shape}) and scores ({y.shape}) must be 1-D, same length, >= 1.",
                        hint="pass one (labels, score) pair per training run")
    if not (np.isfinite(n).all() and np.isfinite(y).all() and (n > 0).all()):
        raise DataError("labels_used must be positive and scores finite.", hint="drop failed runs")
    reached = n[y >= target]
    if len(reached):
        first = float(reached.min())
        return Forecast(target, first, first, first, "observed", True,
                        f"Already reached {target:.3g} with {first:.0f} labels.")
    uniq = np.unique(n)
    if len(uniq) < 2:
        return Forecast(target, None, None, None, "none", True,
                        "Need runs at two or more label counts to forecast.")
    if len(uniq) == 2 or len(n) < 3:
        slope, intercept = np.polyfit(np.log(n), y, 1)
        if slope <= 0:
            return Forecast(target, None, None, None, "log_linear", False,
                            "The score did not improve with more labels; no forecast.")
        needed = float(np.exp((target - intercept) / slope))
        return Forecast(target, needed, None, None, "log_linear", True,
                        f"Rough forecast from 2 runs: about {needed:.0f} labels for {target:.3g}.",
                        params=(float(intercept), float(slope)))
    return _fit_power_law(n, y, target=target, upper=upper, seed=seed)


def _fit_power_law(n: np.ndarray, y: np.ndarray, *, target: float, upper: float | None,
                   seed: int) -> Forecast:
    from scipy.optimize import curve_fit

    a_lo = float(y.min())
    a_hi = np.inf if upper is None else max(float(upper), float(y.max()) + 1e-9)
    a0 = min(y.max() + 0.05 * (abs(y.max()) + 1e-3), a_hi - 1e-12)
    b0 = max((a0 - y.min()) * n.min() ** 0.5, 1e-6)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            popt, pcov = curve_fit(_power_law, n, y, p0=(a0, b0, 0.5),
                                   bounds=([a_lo, 0.0, 1e-3], [a_hi, np.inf, 5.0]), maxfev=20000)
    except (RuntimeError, ValueError) as exc:
        return Forecast(target, None, None, None, "none", True, f"The curve fit failed ({exc}); run more.")
    a, b, c = (float(v) for v in popt)
    needed = _invert(a, b, c, target)
    low = high = None
    if np.isfinite(pcov).all():
        draws = np.random.default_rng(seed).multivariate_normal(popt, pcov, size=1000, check_valid="ignore")
        ns = np.array([_invert(*d, target) for d in draws])
        # "nearest" so draws that never reach the target (inf) do not turn the band into nan.
        low, high = (float(v) for v in np.percentile(ns, [10, 90], method="nearest"))
        if not np.isfinite(low):
            low = high = None
    if not np.isfinite(needed):
        return Forecast(target, None, low, high, "power_law", False,
                        f"Target {target:.3g} is above the curve's asymptote {a:.3g}: more labels of the "
                        "same kind will not reach it; fix label noise, the model or the target.",
                        asymptote=a, params=(a, b, c))
    band = f" (80% band {low:.0f}-{high:.0f})" if low is not None and high is not None else ""
    return Forecast(target, needed, low, high, "power_law", True,
                    f"About {needed:.0f} labels to reach {target:.3g}{band}; "
                    f"the curve levels off at {a:.3g}.",
                    asymptote=a, params=(a, b, c))
