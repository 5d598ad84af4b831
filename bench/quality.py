"""Benchmark: label-error detection on banking77 with injected noise, studio vs plain cleanlab.

Noise: a seeded share of labels is changed, either uniformly to another class or towards the most similar
class (the other class whose embedding centroid is nearest to the example). For each setting it prints
precision / recall / F1 of the flagged labels and AUROC of the ranking score, the share of flagged labels
auto-fix relabels at the default threshold and how often its suggestion is right, then the test accuracy
(banking77 test.csv) of logistic regression on embeddings trained on: noisy labels, curated labels (flagged
rows removed; and flagged rows relabelled to the suggestion) and clean labels. The baseline is
cleanlab.filter.find_label_issues on 5-fold LR-on-embeddings probabilities, ranked by self-confidence.
Also times a cold pass (embeddings encoded into an empty cache) and a warm pass (cache hit).

    .venv/bin/python bench/quality.py [--rates 0.1 0.2] [--modes uniform nearest] [--seeds 0 1 2] [--no-cold]
    .venv/bin/python bench/quality.py --crossval-lora 1500   # the fine-tuned model's probabilities, on a subset
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from studio.embeddings import encode  # noqa: E402
from studio.probabilities import out_of_sample_pred_probs  # noqa: E402
from studio.quality import QualityConfig, run_quality  # noqa: E402

DATA = ROOT / ".." / "shared" / "data" / "banking77"
CACHE = ROOT / "bench" / "out" / "emb_cache"


def inject(y: np.ndarray, emb: np.ndarray, *, rate: float, mode: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = int(y.max()) + 1
    flip = rng.random(len(y)) < rate
    noisy = y.copy()
    if mode == "uniform":
        noisy[flip] = ((y + rng.integers(1, k, size=len(y))) % k)[flip]
    else:
        centroids = np.stack([emb[y == c].mean(0) for c in range(k)])
        sims = emb @ centroids.T
        sims[np.arange(len(y)), y] = -np.inf
        noisy[flip] = sims.argmax(1)[flip]
    return noisy


def test_accuracy(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=10.0, max_iter=300).fit(x, y)
    return float((model.predict(x_test) == y_test).mean())


def detection(err: np.ndarray, flagged: np.ndarray, score: np.ndarray) -> dict[str, float]:
    return {"P": precision_score(err, flagged), "R": recall_score(err, flagged), "F1": f1_score(err, flagged),
            "AUROC": roc_auc_score(err, -score)}


def auto_fix_figures(issues: pd.DataFrame, y: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Auto-fix at the default threshold (studio.review.auto_fix_plan): the share of the flagged labels it
    relabels, and how often the suggestion it takes is the true label."""
    from studio.review import DECISION_COLUMNS, auto_fix_plan

    threshold = QualityConfig().auto_fix_confidence
    fix, rest = auto_fix_plan(issues, pd.DataFrame(columns=DECISION_COLUMNS), min_confidence=threshold)
    index = {c: i for i, c in enumerate(classes)}
    right = fix["suggested_label"].map(index).to_numpy() == y[fix["task_index"].to_numpy()]
    return {f"fix>={threshold:g}": len(fix) / max(len(fix) + len(rest), 1),
            "fix_right": float(right.mean()) if len(fix) else float("nan")}


def print_means(results: dict[tuple[str, float, str], list[dict[str, float]]], clean_acc: float) -> None:
    """One line per (noise, method): the mean over noise seeds of every figure."""
    print(f"\n== mean over seeds (clean-label test accuracy {clean_acc:.3f})")
    for (mode, rate, name), runs in results.items():
        mean = {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}
        print(f"  {rate:.0%} {mode:8s} {name}: " + " ".join(f"{k} {v:.3f}" for k, v in mean.items())
              + f" ({len(runs)} seeds)")


def baseline(texts: list[str], noisy: np.ndarray, emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    probs = out_of_sample_pred_probs(texts, noisy, n_classes=k, embeddings=emb, candidates=["embedding_lr"]).pred_probs
    flagged = find_label_issues(noisy, probs, n_jobs=1)
    return flagged, get_label_quality_scores(noisy, probs), probs.argmax(1)


def crossval_lora(texts: list[str], y: np.ndarray, classes: list[str], *, n: int, seed: int,
                  emb_test: np.ndarray, y_test: np.ndarray) -> None:
    """F1 / AUROC of the label check with and without the fine-tuned model's cross-validated probabilities."""
    import tempfile

    from sklearn.model_selection import train_test_split

    from training.crossval import cross_val_probs

    rows = (np.arange(len(y)) if n >= len(y) else
            train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)[0])
    sub_texts, sub_y = [texts[i] for i in rows], y[rows]
    emb = encode(sub_texts, cache_dir=CACHE)
    noisy = inject(sub_y, emb, rate=0.2, mode="nearest", seed=seed)
    err = noisy != sub_y
    with threadpool_limits(limits=1):
        print(f"{len(rows)} texts: test accuracy with clean labels {test_accuracy(emb, sub_y, emb_test, y_test):.3f}, "
              f"noisy {test_accuracy(emb, noisy, emb_test, y_test):.3f}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        lora, _ = cross_val_probs(sub_texts, noisy, classes, work_root=work, seed=seed)
    print(f"cross-validated LoRA on {len(rows)} texts (20% nearest noise, seed {seed}): "
          f"{time.perf_counter() - start:.0f}s, "
          f"agreement with the true labels {float((lora.argmax(1) == sub_y).mean()):.3f}")
    runs = [("built-in candidates", None), ("+ cross-validated LoRA", lora)]
    first = run_quality(sub_texts, noisy, classes, embeddings=emb, checks=["label_issue"])
    flagged_first = first.issues.sort_values("task_index")["is_issue"].to_numpy()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        lora_clean, _ = cross_val_probs(sub_texts, noisy, classes, work_root=work, seed=seed, exclude=flagged_first)
    print(f"cross-validated LoRA without the {flagged_first.sum()} flagged labels: {time.perf_counter() - start:.0f}s, "
          f"agreement with the true labels {float((lora_clean.argmax(1) == sub_y).mean()):.3f}")
    runs.append(("+ cross-validated LoRA without the flagged labels", lora_clean))
    for name, external in runs:
        rep = run_quality(sub_texts, noisy, classes, embeddings=emb, checks=["label_issue"], pred_probs=external)
        rows_ = rep.issues.sort_values("task_index")
        flagged = rows_["is_issue"].to_numpy()
        figures = detection(err, flagged, rows_["score"].to_numpy())
        with threadpool_limits(limits=1):
            figures["acc_removed"] = test_accuracy(emb[~flagged], noisy[~flagged], emb_test, y_test)
            figures["acc_relabelled"] = test_accuracy(emb, np.where(flagged, rep.pred_probs.argmax(1), noisy),
                                                      emb_test, y_test)
        print(f"  {name}: " + " ".join(f"{k} {v:.3f}" for k, v in figures.items())
              + f" (model {rep.model}, log-loss {({k: round(v, 3) for k, v in rep.model_scores.items()})})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.2])
    parser.add_argument("--modes", nargs="+", default=["uniform", "nearest"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="noise seeds (which labels are flipped); several show how much the figures move")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold (encode from scratch) timing")
    parser.add_argument("--crossval-lora", type=int, default=0, metavar="N",
                        help="also compare, on a stratified subset of N texts with 20%% nearest-class noise, the "
                             "checks with and without the fine-tuned model's cross-validated probabilities "
                             "(training/crossval.py, [train] defaults: N x folds trainings, slow on a CPU)")
    args = parser.parse_args()

    train, test = pd.read_csv(DATA / "train.csv"), pd.read_csv(DATA / "test.csv")
    classes = sorted(train["category"].unique())
    index = {c: i for i, c in enumerate(classes)}
    texts, y = train["text"].tolist(), train["category"].map(index).to_numpy()
    y_test = test["category"].map(index).to_numpy()

    if args.crossval_lora:
        emb_test = encode(test["text"].tolist(), cache_dir=CACHE)
        crossval_lora(texts, y, classes, n=args.crossval_lora, seed=args.seeds[0], emb_test=emb_test, y_test=y_test)
        return
    if not args.no_cold:
        cold_dir = ROOT / "bench" / "out" / "cold_cache"
        shutil.rmtree(cold_dir, ignore_errors=True)
        start = time.perf_counter()
        emb = encode(texts, cache_dir=cold_dir)
        run_quality(texts, y, classes, embeddings=emb)
        print(f"cold pass (encode {len(texts)} texts + all checks): {time.perf_counter() - start:.1f}s")
        shutil.rmtree(cold_dir, ignore_errors=True)
    encode(texts, cache_dir=CACHE)  # make sure the warm cache is filled
    start = time.perf_counter()
    emb = encode(texts, cache_dir=CACHE)
    report = run_quality(texts, y, classes, embeddings=emb)
    print(f"warm pass (cached embeddings + all checks, {len(texts)} texts): {time.perf_counter() - start:.1f}s; "
          f"model {report.model}, log-loss {({k: round(v, 3) for k, v in report.model_scores.items()})}")
    print(f"  on the original labels: {report.flagged('label_issue').shape[0]} label issues, "
          f"{report.flagged('near_duplicate').shape[0]} near-duplicate rows, "
          f"{report.flagged('outlier').shape[0]} outliers")
    emb_test = encode(test["text"].tolist(), cache_dir=CACHE)

    with threadpool_limits(limits=1):
        clean_acc = test_accuracy(emb, y, emb_test, y_test)
        print(f"clean-label test accuracy (LR on embeddings): {clean_acc:.3f}")
        results: dict[tuple[str, float, str], list[dict[str, float]]] = {}
        for mode, rate, seed in itertools.product(args.modes, args.rates, args.seeds):
            noisy = inject(y, emb, rate=rate, mode=mode, seed=seed)
            err = noisy != y
            noisy_acc = test_accuracy(emb, noisy, emb_test, y_test)
            print(f"\n== noise {rate:.0%} {mode}, seed {seed} ({err.sum()} flipped); noisy-label test acc "
                  f"{noisy_acc:.3f}")
            b_flag, b_score, b_pred = baseline(texts, noisy, emb, len(classes))
            start = time.perf_counter()
            rep = run_quality(texts, noisy, classes, embeddings=emb, checks=["label_issue"], config=QualityConfig())
            seconds = time.perf_counter() - start
            rows = rep.issues.sort_values("task_index")
            flagged, score = rows["is_issue"].to_numpy(), rows["score"].to_numpy()
            suggestion = rep.pred_probs.argmax(1)
            for name, fl, sc, pred in [("baseline", b_flag, b_score, b_pred), ("studio  ", flagged, score, suggestion)]:
                keep = ~fl
                relabel = np.where(fl, pred, noisy)
                removed = test_accuracy(emb[keep], noisy[keep], emb_test, y_test)
                relabelled = test_accuracy(emb, relabel, emb_test, y_test)
                figures = detection(err, fl, sc)
                print(f"  {name}: " + " ".join(f"{k} {v:.3f}" for k, v in figures.items())
                      + f" (flagged {fl.sum()}) | test acc curated: flagged removed {removed:.3f}, "
                      f"relabelled {relabelled:.3f}")
                figures.update({"acc_noisy": noisy_acc, "acc_removed": removed, "acc_relabelled": relabelled})
                if name.strip() == "studio":
                    figures.update(auto_fix_figures(rep.issues, y, classes))
                results.setdefault((mode, rate, name), []).append(figures)
            refit = " + refit round" if rep.refit else ""
            print(f"  studio label check took {seconds:.1f}s (model {rep.model}{refit})")
        print_means(results, clean_acc)


if __name__ == "__main__":
    main()
