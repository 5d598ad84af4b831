"""How often is the fast learner's pre-selected answer right, by its top-1 probability? (the pre-annotation threshold)

A pushed prediction pre-selects the model's top-1 class in Label Studio's editor. When that guess is often wrong
it anchors the annotator where the model knows least, so tasks whose top-1 probability (ScoredPool `top1`) is below
`[active] preannotate_threshold` get their prediction for ordering only, with no answer selected. This script
measures where that line should be, on banking77 (CC BY 4.0, ../shared/data/banking77; 77 intents).

Set-up, like a project in the studio: a seeded sample of `--project` train texts is the project; `--labels` of them
(random, per seed) are labeled, the rest is the unlabeled pool. The fast learner (studio/learner.py, the defaults of
[active]) is fitted exactly as `studio.fast_models.fast_scores` does (standardised on labeled + pool, self-trained
on the pool) and predicts the pool, whose true labels it never saw. Also scored: `--test` held-out test texts
outside the project.

Prints, per number of labels (pooled over seeds): top-1 accuracy per top-1 bucket, and for each candidate
threshold the share of pool tasks at or above it (those get a pre-selected answer), their accuracy, the accuracy
just below it, and the same share within the first batch served (diverse_margin, n = `--batch`), which is what
annotators open first.

    .venv/bin/python bench/preannotate.py                 # 3,000-text project, 1,000 test, labels 154/500/1000
    .venv/bin/python bench/preannotate.py --seeds 1 --labels 300

Embeddings are cached under bench/out/embeddings (shared with bench/active.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one BLAS thread (see bench/active.py)
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from studio.active import DiverseMargin
from studio.embeddings import encode
from studio.learner import ActiveConfig, FastLearner

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "banking77"
OUT = ROOT / "bench" / "out"
EDGES = np.round(np.arange(0.0, 1.0001, 0.1), 2)
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)
HELPFUL = 0.6  # a pre-selected answer right less often than this anchors more than it helps (see main)


def load(project: int, test: int, seed: int):
    train = pd.read_csv(DATA / "train.csv").sample(n=project, random_state=seed).reset_index(drop=True)
    held = pd.read_csv(DATA / "test.csv").sample(n=test, random_state=seed).reset_index(drop=True)
    classes = sorted(pd.read_csv(DATA / "train.csv")["category"].unique())
    index = {c: i for i, c in enumerate(classes)}
    cache = OUT / "embeddings"
    x = encode(list(train["text"]), cache_dir=cache)
    x_test = encode(list(held["text"]), cache_dir=cache)
    return x, train["category"].map(index).to_numpy(), x_test, held["category"].map(index).to_numpy(), classes


def buckets(top1: np.ndarray, correct: np.ndarray) -> pd.DataFrame:
    which = np.clip(np.digitize(top1, EDGES[1:-1]), 0, len(EDGES) - 2)
    rows = []
    for b in range(len(EDGES) - 1):
        hit = which == b
        rows.append({"top1": f"[{EDGES[b]:.1f}, {EDGES[b + 1]:.1f})", "tasks": int(hit.sum()),
                     "share": round(float(hit.mean()), 3),
                     "top-1 accuracy": round(float(correct[hit].mean()), 3) if hit.any() else None})
    return pd.DataFrame(rows)


def _accuracy(correct: np.ndarray, where: np.ndarray) -> float | None:
    return round(float(correct[where].mean()), 3) if where.any() else None


def thresholds(top1: np.ndarray, correct: np.ndarray, batch_top1: np.ndarray) -> pd.DataFrame:
    rows = []
    for t in THRESHOLDS:
        above = top1 >= t
        rows.append({"threshold": t, "pre-selected share": round(float(above.mean()), 3),
                     "accuracy >= t": _accuracy(correct, above),
                     "accuracy in [t, t+0.1)": _accuracy(correct, above & (top1 < t + 0.1)),
                     "accuracy in [t-0.1, t)": _accuracy(correct, ~above & (top1 >= t - 0.1)),
                     "first batch pre-selected": round(float((batch_top1 >= t).mean()), 3)})
    return pd.DataFrame(rows)


def lowest_helpful(top1: np.ndarray, correct: np.ndarray, *, level: float = HELPFUL, width: float = 0.1,
                   min_tasks: int = 30) -> float | None:
    """The lowest candidate threshold t such that every band [s, s + width) with s >= t (bands with at least
    min_tasks tasks) has top-1 accuracy >= level: above it, a pre-selected answer is right often enough
    everywhere, not only on average."""
    for t in THRESHOLDS:
        starts = np.arange(t, 1.0, 0.05)
        bands = [(top1 >= s) & (top1 < s + width) for s in starts]
        if all(correct[b].mean() >= level for b in bands if b.sum() >= min_tasks):
            return t
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=int, default=3000, help="banking77 train texts in the project")
    parser.add_argument("--test", type=int, default=1000, help="held-out test texts (outside the project)")
    parser.add_argument("--labels", default="154,500,1000", help="labeled tasks (comma-separated sizes)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=50, help="the first batch served (diverse_margin)")
    args = parser.parse_args()

    t0 = time.time()
    x, y, x_test, y_test, classes = load(args.project, args.test, seed=0)
    print(f"banking77: project {len(y)} train texts ({len(classes)} classes), {len(y_test)} held-out test texts; "
          f"embedded in {time.time() - t0:.0f}s; fast learner defaults {ActiveConfig().to_dict()}; "
          f"seeds {args.seeds}\n")
    with pd.option_context("display.width", 160, "display.max_columns", 12):
        for n_labels in (int(v) for v in args.labels.split(",")):
            pool_top1, pool_ok, test_top1, test_ok, batch_top1 = [], [], [], [], []
            for seed in range(args.seeds):
                rng = np.random.default_rng(seed)
                labeled = np.zeros(len(y), dtype=bool)
                labeled[rng.choice(len(y), n_labels, replace=False)] = True
                pool = np.flatnonzero(~labeled)
                learner = FastLearner(x, len(classes), config=ActiveConfig()).fit(x[labeled], y[labeled], x[pool])
                probs = learner.predict_proba(x[pool])
                pool_top1.append(probs.max(axis=1))
                pool_ok.append(probs.argmax(axis=1) == y[pool])
                first = DiverseMargin().select(probs, n=args.batch, embeddings=x[pool], seed=seed)
                batch_top1.append(probs[first].max(axis=1))
                tp = learner.predict_proba(x_test)
                test_top1.append(tp.max(axis=1))
                test_ok.append(tp.argmax(axis=1) == y_test)
            p_top1, p_ok = np.concatenate(pool_top1), np.concatenate(pool_ok)
            t_top1, t_ok = np.concatenate(test_top1), np.concatenate(test_ok)
            print(f"== {n_labels} labels: pool {len(pool)} tasks x {args.seeds} seeds; top-1 accuracy pool "
                  f"{p_ok.mean():.3f}, held-out test {t_ok.mean():.3f}; median top1 pool {np.median(p_top1):.3f}")
            table = buckets(p_top1, p_ok).merge(
                buckets(t_top1, t_ok).rename(columns={"tasks": "test tasks", "share": "test share",
                                                      "top-1 accuracy": "test accuracy"}), on="top1")
            print(table.to_string(index=False))
            print()
            print(thresholds(p_top1, p_ok, np.concatenate(batch_top1)).to_string(index=False))
            print(f"lowest threshold above which every 0.1-wide top1 band of the pool is right >= {HELPFUL:.0%} of "
                  f"the time: {lowest_helpful(p_top1, p_ok)} (held-out test: {lowest_helpful(t_top1, t_ok)})")
            print(flush=True)
    print(f"(total {time.time() - t0:.0f}s)")


if __name__ == "__main__":
    main()
