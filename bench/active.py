"""Simulated active learning on banking77: does a query strategy need fewer labels than random?

The train split is the unlabeled pool; its labels are revealed only when a strategy queries them. The model is
the studio's fast learner (studio/learner.py): multinomial logistic regression on frozen all-MiniLM-L6-v2
embeddings (standardised with pool statistics), self-trained on the pool's confident pseudo-labels and
warm-started from the previous round; `--pseudo-weights 0` gives the same regression on the labeled tasks
alone. Every configuration starts from the same seed set per seed (random, or the `cold_start` strategy's
diverse set) and queries equal batches. The full-data reference is the same regression on every label.

Prints, per configuration (mean over seeds): normalised learning-curve area (mean test accuracy over the label
budget divided by full-data accuracy) and the labels needed to reach 95% and 98% of full-data accuracy.

    .venv/bin/python bench/active.py   # default: 5 seeds, cold_start seed set 154, batch 50, budget 1500,
                                       # self-training 0.5 vs none, random vs diverse_margin
    .venv/bin/python bench/active.py --seeds 1 --budget 1000 --strategies random,margin --pseudo-weights 0

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

from studio.active import DiverseMargin, QueryStrategy, get_strategy
from studio.embeddings import encode
from studio.learner import ActiveConfig, FastLearner

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "banking77"
OUT = ROOT / "bench" / "out"


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    train = pd.read_csv(DATA / "train.csv")
    test = pd.read_csv(DATA / "test.csv")
    classes = sorted(train["category"].unique())
    index = {c: i for i, c in enumerate(classes)}
    cache = OUT / "embeddings"
    x_pool = encode(list(train["text"]), cache_dir=cache, progress=_progress("pool"))
    x_test = encode(list(test["text"]), cache_dir=cache, progress=_progress("test"))
    return (x_pool, train["category"].map(index).to_numpy(), x_test, test["category"].map(index).to_numpy(),
            classes)


def _progress(name: str):
    def report(done: int, total: int) -> None:
        if done == total or done % 2560 == 0:
            print(f"  encoding {name}: {done}/{total}", file=sys.stderr, flush=True)
    return report


def make_strategy(name: str, *, pool_factor: int) -> QueryStrategy:
    if name == "diverse_margin":
        query = DiverseMargin()
        query.pool_factor = pool_factor
        return query
    return get_strategy(name)


def simulate(x_pool, y_pool, x_test, y_test, *, strategy: str, seed_set: np.ndarray, batch: int,
             budget: int, config: ActiveConfig, seed: int,
             pool_factor: int = DiverseMargin.pool_factor) -> tuple[list[int], list[float]]:
    """One active-learning run; returns (labels used, test accuracy) after each round."""
    labeled = np.zeros(len(y_pool), dtype=bool)
    labeled[seed_set] = True
    learner = FastLearner(x_pool, int(y_pool.max()) + 1, config=config)
    sizes, accs = [], []
    query = make_strategy(strategy, pool_factor=pool_factor)
    round_no = 0
    while True:
        idx, pool = np.flatnonzero(labeled), np.flatnonzero(~labeled)
        learner.fit(x_pool[idx], y_pool[idx], x_pool[pool])
        accs.append(float((learner.predict_proba(x_test).argmax(axis=1) == y_test).mean()))
        sizes.append(int(labeled.sum()))
        if sizes[-1] >= budget:
            return sizes, accs
        n = min(batch, budget - sizes[-1], len(pool))
        probs = learner.predict_proba(x_pool[pool])
        picked = query.select(probs, n=n, embeddings=x_pool[pool], seed=seed * 1000 + round_no)
        labeled[pool[picked]] = True
        round_no += 1


def labels_to_reach(sizes: list[int], accs: np.ndarray, target: float) -> int | None:
    hit = np.flatnonzero(accs >= target)
    return int(sizes[hit[0]]) if len(hit) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = ActiveConfig()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed-size", type=int, default=154)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--budget", type=int, default=1500)
    parser.add_argument("--C", type=float, default=defaults.c, help="inverse L2 strength at the full pool")
    parser.add_argument("--C-power", type=float, default=defaults.c_power,
                        help="C(n) = C * (n / pool size) ** power: more shrinkage while few labels exist")
    parser.add_argument("--pseudo-weights", default=f"{defaults.pseudo_weight},0",
                        help="self-training weights to compare (0 = the labeled tasks alone)")
    parser.add_argument("--pseudo-threshold", type=float, default=defaults.pseudo_threshold)
    parser.add_argument("--pool-factor", type=int, default=4,
                        help="diverse_margin: cluster the pool_factor * batch most uncertain tasks")
    parser.add_argument("--strategies", default="random,diverse_margin",
                        help="any of random,least_confidence,entropy,margin,diverse_margin")
    parser.add_argument("--seed-sets", default="cold_start",
                        help="how the seed set is drawn: random and/or cold_start (typical task per k-means cluster)")
    args = parser.parse_args()

    t0 = time.time()
    x_pool, y_pool, x_test, y_test, classes = load()
    reference = ActiveConfig(c=args.C, c_power=args.C_power)
    full = FastLearner(x_pool, len(classes), config=reference).fit(x_pool, y_pool)
    full_acc = float((full.predict_proba(x_test).argmax(axis=1) == y_test).mean())
    print(f"banking77: pool {len(y_pool)}, test {len(y_test)}, {len(classes)} classes; full-data accuracy "
          f"{full_acc:.4f} (C={args.C}); targets 95% = {0.95 * full_acc:.4f}, 98% = {0.98 * full_acc:.4f}")
    print(f"seed set {args.seed_size}, batch {args.batch}, budget {args.budget}, seeds {args.seeds}, "
          f"C(n) = {args.C} * (n/{len(y_pool)})^{args.C_power}, pseudo-label threshold {args.pseudo_threshold}, "
          f"diverse_margin pool factor {args.pool_factor}\n")

    rows = []
    for seed_kind in args.seed_sets.split(","):
        seed_sets = []
        for seed in range(args.seeds):
            if seed_kind == "cold_start":
                seed_sets.append(get_strategy("cold_start").select(None, n=args.seed_size,
                                                                   embeddings=x_pool, seed=seed))
            else:
                rng = np.random.default_rng(seed)
                seed_sets.append(rng.choice(len(y_pool), args.seed_size, replace=False))
        for weight in (float(w) for w in args.pseudo_weights.split(",")):
            config = ActiveConfig(c=args.C, c_power=args.C_power, pseudo_weight=weight,
                                  pseudo_threshold=args.pseudo_threshold)
            for strategy in args.strategies.split(","):
                t = time.time()
                curves = []
                for seed in range(args.seeds):
                    sizes, accs = simulate(x_pool, y_pool, x_test, y_test, strategy=strategy,
                                           seed_set=seed_sets[seed], batch=args.batch, budget=args.budget,
                                           config=config, seed=seed, pool_factor=args.pool_factor)
                    curves.append(accs)
                mean = np.mean(curves, axis=0)
                area = float(np.trapezoid(mean, sizes) / ((sizes[-1] - sizes[0]) * full_acc))
                per_seed95 = [labels_to_reach(sizes, np.asarray(c), 0.95 * full_acc) for c in curves]
                row = {"seed set": seed_kind, "self-training": weight, "strategy": strategy,
                       "area": round(area, 4), "acc@end": round(float(mean[-1]), 4),
                       "labels→95%": labels_to_reach(sizes, mean, 0.95 * full_acc) or f">{args.budget}",
                       "labels→98%": labels_to_reach(sizes, mean, 0.98 * full_acc) or f">{args.budget}",
                       "95% per seed": per_seed95, "s": round(time.time() - t, 1)}
                rows.append(row)
                print("  " + "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    print()
    with pd.option_context("display.width", 180, "display.max_columns", 20):
        print(pd.DataFrame(rows).to_string(index=False))
    print(f"\n(>budget or None = not reached within the budget; total {time.time() - t0:.0f}s)")


if __name__ == "__main__":
    main()
