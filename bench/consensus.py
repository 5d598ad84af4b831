"""Benchmark: consensus from five simulated annotators of known accuracy over banking77.

Each task is labelled by 3 of 5 annotators (seeded); an annotator errs with probability 1 - accuracy, and an
error goes to one of the three classes whose centroids lie closest to the example (the realistic confusion).
Prints majority-vote and consensus accuracy against the true labels, and the Spearman correlation between
estimated and true annotator accuracy.

    .venv/bin/python bench/consensus.py [--n 10000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from studio.consensus import run_consensus  # noqa: E402
from studio.embeddings import encode  # noqa: E402

DATA = ROOT / ".." / "shared" / "data"
ACCURACY = {"ann_a": 0.95, "ann_b": 0.85, "ann_c": 0.75, "ann_d": 0.65, "ann_e": 0.55}


def simulate(y: np.ndarray, emb: np.ndarray, *, per_task: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    k = int(y.max()) + 1
    centroids = np.stack([emb[y == c].mean(0) for c in range(k)])
    sims = emb @ centroids.T
    sims[np.arange(len(y)), y] = -np.inf
    similar = np.argsort(-sims, axis=1)[:, :3]  # the three most similar wrong classes per example
    names = list(ACCURACY)
    table = np.full((len(y), len(names)), np.nan)
    for i in range(len(y)):
        for j in rng.choice(len(names), size=per_task, replace=False):
            wrong = rng.random() > ACCURACY[names[j]]
            table[i, j] = similar[i, rng.integers(3)] if wrong else y[i]
    return pd.DataFrame(table, columns=names)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--per-task", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train = pd.read_csv(DATA / "banking77" / "train.csv").sample(frac=1.0, random_state=args.seed).head(args.n)
    classes = sorted(train["category"].unique())
    y = train["category"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    texts = train["text"].tolist()
    emb = encode(texts, cache_dir=ROOT / "bench" / "out" / "emb_cache")
    table = simulate(y, emb, per_task=args.per_task, seed=args.seed)
    print(f"banking77 train n={len(y)}, {args.per_task} of {len(ACCURACY)} annotators per task, "
          f"true accuracies {ACCURACY}")
    runs = [("baseline: CROWDLAB on LR-on-embeddings pred_probs", 1, ["embedding_lr"]),
            ("studio: CROWDLAB on best of LR/kNN/ensemble pred_probs", 1, None)]
    if args.rounds > 1:
        runs.append((f"studio, {args.rounds} rounds (refit on consensus)", args.rounds, None))
    for label, rounds, candidates in runs:
        start = time.perf_counter()
        kwargs = {"candidates": candidates} if candidates else {}
        result = run_consensus(table, classes, texts=texts, embeddings=emb, rounds=rounds, seed=args.seed,
                               **kwargs)
        seconds = time.perf_counter() - start
        majority = (result.tasks["majority_label"].to_numpy() == y).mean()
        consensus = (result.tasks["consensus_label"].to_numpy() == y).mean()
        est = result.annotators.set_index("annotator")["annotator_quality"]
        rho = spearmanr([ACCURACY[a] for a in est.index], est.to_numpy()).statistic
        order = " > ".join(result.annotators["annotator"])
        print(f"{label}: majority vote acc {majority:.3f} | consensus acc {consensus:.3f} | "
              f"annotator rank corr {rho:.3f} ({order}) | pred_probs model {result.model} | {seconds:.1f}s")
    overall = result.agreement.loc["overall"]
    print(f"agreement: Krippendorff alpha {overall['krippendorff_alpha']:.3f}, "
          f"percent agreement {overall['percent_agreement']:.3f}")


if __name__ == "__main__":
    main()
