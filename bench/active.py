"""Simulated active learning on banking77: does a query strategy need fewer labels than random?

The train split is the unlabeled pool; its labels are revealed only when a strategy queries them. The model is
a multinomial logistic regression on frozen all-MiniLM-L6-v2 embeddings (standardised with pool statistics,
which a pool-based learner may use), warm-started from the previous round. Every configuration starts from
the same seed set per seed (random, or the `cold_start` strategy's diverse set) and queries equal batches.

Prints, per configuration (mean over seeds): normalised learning-curve area (mean test accuracy over the label
budget divided by full-data accuracy) and the labels needed to reach 95% and 98% of full-data accuracy.

    .venv/bin/python bench/active.py   # default: 3 seeds, cold_start seed set 154, batch 50, budget 1500,
                                       # C(n) = 0.3 * (n/pool)^0.5, diverse_margin pool factor 4
    .venv/bin/python bench/active.py --seeds 1 --budget 1000 --strategies random,margin

Embeddings are cached under bench/out/ (git-ignored); the first run encodes ~13k texts (a few minutes on CPU).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One BLAS thread: the fits are small, and on a shared 2-core machine spinning BLAS threads made each fit ~30x
# slower (measured: 73 s -> 2 s for one fit).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from studio.active import DiverseMargin, QueryStrategy, get_strategy
from studio.embeddings import encode

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "banking77"
OUT = ROOT / "bench" / "out"


class SoftmaxRegression:
    """L2-regularised multinomial logistic regression over a fixed class list, fitted with L-BFGS.

    Same objective as sklearn's LogisticRegression(C=...) (C x summed cross-entropy + 0.5 ||W||^2, bias not
    penalised), but it keeps every class (absent ones just get pushed down) and warm-starts from the last fit,
    which makes an active-learning round a fraction of a cold sklearn fit.
    """

    def __init__(self, n_features: int, n_classes: int, *, C: float) -> None:
        self.C = C
        self.k = n_classes
        self.w = np.zeros((n_features + 1, n_classes))

    def fit(self, x: np.ndarray, y: np.ndarray) -> SoftmaxRegression:
        xb = np.hstack([x, np.ones((len(x), 1), dtype=x.dtype)]).astype(np.float64)
        onehot = np.eye(self.k)[y]
        mask = np.ones_like(self.w)
        mask[-1] = 0.0  # no penalty on the bias row

        def loss_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
            w = flat.reshape(self.w.shape)
            z = xb @ w
            z -= z.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            loss = -self.C * (onehot * logp).sum() + 0.5 * ((w * mask) ** 2).sum()
            grad = self.C * xb.T @ (np.exp(logp) - onehot) + w * mask
            return float(loss), grad.ravel()

        res = minimize(loss_grad, self.w.ravel(), jac=True, method="L-BFGS-B",
                       options={"maxiter": 300, "gtol": 1e-4})
        self.w = res.x.reshape(self.w.shape)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = x @ self.w[:-1] + self.w[-1]
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    train = pd.read_csv(DATA / "train.csv")
    test = pd.read_csv(DATA / "test.csv")
    classes = sorted(train["category"].unique())
    index = {c: i for i, c in enumerate(classes)}
    cache = OUT / "embeddings"
    x_pool = encode(list(train["text"]), cache_dir=cache, progress=_progress("pool"))
    x_test = encode(list(test["text"]), cache_dir=cache, progress=_progress("test"))
    mu, sd = x_pool.mean(axis=0), np.maximum(x_pool.std(axis=0), 1e-6)
    return ((x_pool - mu) / sd, train["category"].map(index).to_numpy(),
            (x_test - mu) / sd, test["category"].map(index).to_numpy(), classes)


def _progress(name: str):
    def report(done: int, total: int) -> None:
        if done == total or done % 2560 == 0:
            print(f"  encoding {name}: {done}/{total}", file=sys.stderr, flush=True)
    return report


def c_for(n: int, *, C: float, power: float, n_full: int) -> float:
    """Inverse L2 strength for n labels: C at the full pool, scaled by (n / n_full) ** power.

    The summed loss already outweighs the penalty as n grows; power > 0 adds more shrinkage for small labeled
    sets (where a few examples per class over-fit 384 dimensions) and relaxes it as labels accumulate. The
    full-data reference uses C itself, so both ends of the comparison are the same model family.
    """
    return C * (n / n_full) ** power


def make_strategy(name: str, *, pool_factor: int) -> QueryStrategy:
    if name == "diverse_margin":
        query = DiverseMargin()
        query.pool_factor = pool_factor
        return query
    return get_strategy(name)


def simulate(x_pool, y_pool, x_test, y_test, *, strategy: str, seed_set: np.ndarray, batch: int,
             budget: int, C: float, seed: int, raw_pool: np.ndarray, C_power: float = 0.0,
             pool_factor: int = DiverseMargin.pool_factor) -> tuple[list[int], list[float]]:
    """One active-learning run; returns (labels used, test accuracy) after each round."""
    k = int(y_pool.max()) + 1
    labeled = np.zeros(len(y_pool), dtype=bool)
    labeled[seed_set] = True
    model = SoftmaxRegression(x_pool.shape[1], k, C=C)
    sizes, accs = [], []
    query = make_strategy(strategy, pool_factor=pool_factor)
    round_no = 0
    while True:
        idx = np.flatnonzero(labeled)
        model.C = c_for(len(idx), C=C, power=C_power, n_full=len(y_pool))
        model.fit(x_pool[idx], y_pool[idx])
        accs.append(float((model.predict_proba(x_test).argmax(axis=1) == y_test).mean()))
        sizes.append(int(labeled.sum()))
        if sizes[-1] >= budget:
            return sizes, accs
        pool = np.flatnonzero(~labeled)
        n = min(batch, budget - sizes[-1], len(pool))
        probs = model.predict_proba(x_pool[pool])
        picked = query.select(probs, n=n, embeddings=raw_pool[pool], seed=seed * 1000 + round_no)
        labeled[pool[picked]] = True
        round_no += 1


def labels_to_reach(sizes: list[int], accs: np.ndarray, target: float) -> int | None:
    hit = np.flatnonzero(accs >= target)
    return int(sizes[hit[0]]) if len(hit) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed-size", type=int, default=154)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--budget", type=int, default=1500)
    parser.add_argument("--C", type=float, default=0.3, help="inverse L2 strength (standardised features)")
    parser.add_argument("--C-power", type=float, default=0.5,
                        help="C(n) = C * (n / pool size) ** power: more shrinkage while few labels exist")
    parser.add_argument("--pool-factor", type=int, default=4,
                        help="diverse_margin: cluster the pool_factor * batch most uncertain tasks")
    parser.add_argument("--strategies", default="random,diverse_margin",
                        help="any of random,least_confidence,entropy,margin,diverse_margin")
    parser.add_argument("--seed-sets", default="cold_start",
                        help="how the seed set is drawn: random and/or cold_start (typical task per k-means cluster)")
    args = parser.parse_args()

    t0 = time.time()
    x_pool, y_pool, x_test, y_test, classes = load()
    raw_pool = encode(list(pd.read_csv(DATA / "train.csv")["text"]), cache_dir=OUT / "embeddings")
    full = SoftmaxRegression(x_pool.shape[1], len(classes), C=args.C).fit(x_pool, y_pool)
    full_acc = float((full.predict_proba(x_test).argmax(axis=1) == y_test).mean())
    print(f"banking77: pool {len(y_pool)}, test {len(y_test)}, {len(classes)} classes; full-data accuracy "
          f"{full_acc:.4f} (C={args.C}); targets 95% = {0.95 * full_acc:.4f}, 98% = {0.98 * full_acc:.4f}")
    print(f"seed set {args.seed_size}, batch {args.batch}, budget {args.budget}, seeds {args.seeds}, "
          f"C(n) = {args.C} * (n/{len(y_pool)})^{args.C_power}, diverse_margin pool factor {args.pool_factor}\n")

    rows = []
    for seed_kind in args.seed_sets.split(","):
        seed_sets = []
        for seed in range(args.seeds):
            if seed_kind == "cold_start":
                seed_sets.append(get_strategy("cold_start").select(None, n=args.seed_size,
                                                                   embeddings=raw_pool, seed=seed))
            else:
                rng = np.random.default_rng(seed)
                seed_sets.append(rng.choice(len(y_pool), args.seed_size, replace=False))
        for strategy in args.strategies.split(","):
            t = time.time()
            curves = []
            for seed in range(args.seeds):
                sizes, accs = simulate(x_pool, y_pool, x_test, y_test, strategy=strategy,
                                       seed_set=seed_sets[seed], batch=args.batch, budget=args.budget,
                                       C=args.C, seed=seed, raw_pool=raw_pool, C_power=args.C_power,
                                       pool_factor=args.pool_factor)
                curves.append(accs)
            mean = np.mean(curves, axis=0)
            area = float(np.trapezoid(mean, sizes) / ((sizes[-1] - sizes[0]) * full_acc))
            per_seed95 = [labels_to_reach(sizes, np.asarray(c), 0.95 * full_acc) for c in curves]
            row = {"seed set": seed_kind, "strategy": strategy, "area": round(area, 4),
                   "acc@end": round(float(mean[-1]), 4),
                   "labels→95%": labels_to_reach(sizes, mean, 0.95 * full_acc) or f">{args.budget}",
                   "labels→98%": labels_to_reach(sizes, mean, 0.98 * full_acc) or f">{args.budget}",
                   "95% per seed": per_seed95, "s": round(time.time() - t, 1)}
            rows.append(row)
            print("  " + "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    print()
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(pd.DataFrame(rows).to_string(index=False))
    print(f"\n(>budget or None = not reached within the budget; total {time.time() - t0:.0f}s)")


if __name__ == "__main__":
    main()
