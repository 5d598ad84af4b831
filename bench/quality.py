"""Benchmark: label-error detection with injected noise on banking77, longdocs and convabuse.

For each data set, in one run: the studio's default pass (`dense_view` decides whether the texts are embedded;
long documents get the TF-IDF view alone), the same without its refit round, plain cleanlab on embeddings
(find_label_issues on 5-fold logistic regression on MiniLM, ranked by self-confidence) and plain cleanlab on
TF-IDF + logistic regression (sublinear tf, word + character n-grams, saga, same ranking). Noise: a seeded share
of labels changed uniformly to another class, or towards the nearest class (the other class whose embedding
centroid is nearest). Figures: precision / recall / F1 of the flagged labels, AUROC of the ranking, how many
true errors are among the worst 2% of the ranking; cold pass (nothing cached) and warm pass (embeddings cached)
times with every check, and peak memory. `--json` writes every figure (with machine and load) to a file.

    .venv/bin/python bench/quality.py --data banking77 longdocs convabuse [--rates 0.1 0.2]
        [--modes uniform nearest] [--seeds 0] [--no-cold] [--json bench/results/quality.json]
    .venv/bin/python bench/quality.py --crossval-lora 1500   # banking77: the fine-tuned model's probabilities

longdocs (BBC News) is benchmark-only: its texts stay under ../shared/data and bench/out/.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
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
from studio.probabilities import make_folds, out_of_sample_pred_probs  # noqa: E402
from studio.quality import QualityConfig, dense_view, run_quality  # noqa: E402

SHARED = ROOT / ".." / "shared" / "data"
DATA = SHARED / "banking77"
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


def load(name: str) -> tuple[list[str], np.ndarray, list[str]]:
    """(texts, class indices, class names) of a benchmark data set (all its labeled rows)."""
    if name == "banking77":
        frame, text, label = pd.read_csv(DATA / "train.csv"), "text", "category"
    elif name == "longdocs":
        frame = pd.read_csv(SHARED / "longdocs" / "longdocs.csv.gz", keep_default_na=False)
        text, label = "text", "label"
    elif name == "convabuse":
        frame = pd.read_csv(SHARED / "convabuse" / "convabuse_items.csv")
        frame = frame.assign(label=np.where(frame["majority_is_abusive"] == 1, "abusive", "not_abusive"))
        text, label = "user", "label"
    else:
        raise SystemExit(f"--data {name!r}: expected banking77, longdocs or convabuse")
    classes = sorted(frame[label].astype(str).unique())
    index = {c: i for i, c in enumerate(classes)}
    return frame[text].astype(str).tolist(), frame[label].astype(str).map(index).to_numpy(), classes


def scaled_longdocs(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[str]]:
    """n documents for timing only: each a headline and 4-8 paragraphs drawn from longdocs articles of one topic
    (about the set's own length), so the vocabulary and length are real and no two are copies."""
    texts, y, classes = load("longdocs")
    rng = np.random.default_rng(seed)
    paragraphs = [[p for i in np.flatnonzero(y == c) for p in texts[i].split("\n\n")] for c in range(len(classes))]
    labels = rng.integers(0, len(classes), size=n)
    docs = ["\n\n".join(rng.choice(paragraphs[c], size=int(rng.integers(4, 9)), replace=False)) for c in labels]
    return docs, labels, classes


def time_cold(n: int) -> dict:
    """A cold pass (every check, default config) over n synthetic long documents, 5% of their labels changed
    (so the refit round runs, as on real data with a few wrong labels): seconds, peak RSS."""
    texts, y, classes = scaled_longdocs(n)
    rng = np.random.default_rng(1)
    flip = rng.random(n) < 0.05
    y = np.where(flip, (y + rng.integers(1, len(classes), size=n)) % len(classes), y)
    config = QualityConfig()
    use_dense, why = dense_view(texts, config)
    cold_dir = ROOT / "bench" / "out" / "cold_cache"
    shutil.rmtree(cold_dir, ignore_errors=True)
    load_before, start = load_avg(), time.perf_counter()
    emb = encode(texts, cache_dir=cold_dir) if use_dense else None
    report = run_quality(texts, y, classes, embeddings=emb, config=config)
    out = {"data": f"longdocs paragraphs recombined into {n} documents, 5% labels changed (timing only)", "n": n,
           "texts": report.texts, "dense_view": use_dense, "cold_s": round(time.perf_counter() - start, 1),
           "load": f"{load_before} -> {load_avg()}", "peak_rss_mb": round(peak_mb()), "model": report.model}
    shutil.rmtree(cold_dir, ignore_errors=True)
    print(f"cold pass over {n} long documents ({report.texts}): {out['cold_s']}s, load {out['load']}, peak RSS "
          f"{out['peak_rss_mb']} MB, model {report.model}")
    return out


def worst_share(err: np.ndarray, score: np.ndarray, share: float = 0.02) -> int:
    """How many true errors are among the lowest-scored `share` of the labels."""
    n = max(1, int(round(share * len(err))))
    return int(err[np.argsort(score, kind="stable")[:n]].sum())


def plain_cleanlab(noisy: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    return find_label_issues(noisy, probs, n_jobs=1), get_label_quality_scores(noisy, probs)


def tfidf_baseline(texts: list[str], noisy: np.ndarray, k: int) -> np.ndarray:
    from studio.sparse_model import cross_val_sparse_lr, tfidf_features

    folds, _ = make_folds(noisy, folds=5, seed=0)
    return cross_val_sparse_lr(tfidf_features(texts), noisy, k, folds)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_data(name: str, args: argparse.Namespace) -> dict:
    texts, y, classes = load(name)
    config = QualityConfig()
    use_dense, why = dense_view(texts, config)
    out: dict = {"data": name, "n": len(texts), "classes": len(classes), "dense_view": use_dense, "why": why}
    print(f"\n##### {name}: {len(texts)} texts, {len(classes)} classes; embeddings used: {use_dense} ({why})")
    if not args.no_cold:
        cold_dir = ROOT / "bench" / "out" / "cold_cache"
        shutil.rmtree(cold_dir, ignore_errors=True)
        load_before, start = load_avg(), time.perf_counter()
        emb = encode(texts, cache_dir=cold_dir) if use_dense else None
        run_quality(texts, y, classes, embeddings=emb, config=config)
        out["cold_s"] = round(time.perf_counter() - start, 1)
        out["cold_load"] = f"{load_before} -> {load_avg()}"
        out["peak_rss_mb_after_cold"] = round(peak_mb())
        print(f"cold pass (encode + every check): {out['cold_s']}s, load {out['cold_load']}, peak RSS "
              f"{out['peak_rss_mb_after_cold']} MB")
        shutil.rmtree(cold_dir, ignore_errors=True)
    emb_all = encode(texts, cache_dir=CACHE)  # the baselines' embeddings (long texts: whole, mean of windows)
    load_before, start = load_avg(), time.perf_counter()
    emb = encode(texts, cache_dir=CACHE) if use_dense else None
    report = run_quality(texts, y, classes, embeddings=emb, config=config)
    out["warm_s"] = round(time.perf_counter() - start, 1)
    out["warm_load"] = f"{load_before} -> {load_avg()}"
    out["on_given_labels"] = {"model": report.model, "choice": report.choice, "texts": report.texts,
                              "label_issues": int(report.flagged("label_issue").shape[0]),
                              "near_duplicate_rows": int(report.flagged("near_duplicate").shape[0]),
                              "outliers": int(report.flagged("outlier").shape[0]),
                              "per_class": report.class_summary[["class", "count", "share", "label_issues",
                                                                 "issue_rate", "flag_share"]]
                              .round(4).to_dict(orient="records")}
    print(f"warm pass (every check): {out['warm_s']}s, load {out['warm_load']}; model {report.model}; texts "
          f"{report.texts}; on the given labels {out['on_given_labels']['label_issues']} label issues, "
          f"{out['on_given_labels']['near_duplicate_rows']} near-duplicate rows, "
          f"{out['on_given_labels']['outliers']} outliers")
    print(f"  choice: {report.choice['rule']}")
    top = report.class_summary.head(5)
    print("  per class (worst 5 by issue rate): " + "; ".join(
        f"{r['class']} share {r['share']:.1%} of labels, {r['flag_share']:.1%} of flags" for _, r in top.iterrows()))
    out["runs"] = []
    with threadpool_limits(limits=1):
        for mode, rate, seed in itertools.product(args.modes, args.rates, args.seeds):
            noisy = inject(y, emb_all, rate=rate, mode=mode, seed=seed)
            err = noisy != y
            print(f"\n== {name}: noise {rate:.0%} {mode}, seed {seed} ({err.sum()} flipped, worst 2% = "
                  f"{max(1, int(round(0.02 * len(y))))} labels), load {load_avg()}")
            methods: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            times: dict[str, float] = {}
            for label, cfg in [("studio default", config), ("studio, no refit", QualityConfig(refit_rounds=0))]:
                start = time.perf_counter()
                rep = run_quality(texts, noisy, classes, embeddings=emb, checks=["label_issue"], config=cfg)
                times[label] = time.perf_counter() - start
                rows = rep.issues.sort_values("task_index")
                methods[label] = rows["is_issue"].to_numpy(), rows["score"].to_numpy()
                if label == "studio default":
                    chosen, fix = rep.model, auto_fix_figures(rep.issues, y, classes)
            start = time.perf_counter()
            probs = out_of_sample_pred_probs(texts, noisy, n_classes=len(classes), embeddings=emb_all,
                                             candidates=["embedding_lr"]).pred_probs
            methods["cleanlab on embeddings"] = plain_cleanlab(noisy, probs)
            times["cleanlab on embeddings"] = time.perf_counter() - start
            start = time.perf_counter()
            methods["cleanlab on TF-IDF + LR"] = plain_cleanlab(noisy, tfidf_baseline(texts, noisy, len(classes)))
            times["cleanlab on TF-IDF + LR"] = time.perf_counter() - start
            for label, (flagged, score) in methods.items():
                figures = {"P": precision_score(err, flagged), "R": recall_score(err, flagged),
                           "F1": f1_score(err, flagged), "AUROC": roc_auc_score(err, -score)}
                figures = {k: round(float(v), 4) for k, v in figures.items()}
                figures.update({"worst2%": worst_share(err, score), "flagged": int(flagged.sum()),
                                "seconds": round(times[label], 1)})
                print(f"  {label:24s} " + " ".join(f"{k} {v}" for k, v in figures.items()))
                out["runs"].append({"mode": mode, "rate": rate, "seed": seed, "flipped": int(err.sum()),
                                    "method": label, **figures})
            print(f"  (studio default chose {chosen}; auto-fix relabels {fix[next(iter(fix))]:.0%} of its flags, "
                  f"right {fix['fix_right']:.1%})")
            out["runs"].append({"mode": mode, "rate": rate, "seed": seed, "method": "studio default: auto-fix",
                                "model": chosen, **{k: round(v, 4) for k, v in fix.items()}})
    out["peak_rss_mb"] = round(peak_mb())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", nargs="+", default=["banking77"], choices=["banking77", "longdocs", "convabuse"])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.2])
    parser.add_argument("--modes", nargs="+", default=["uniform", "nearest"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="noise seeds (which labels are flipped); several show how much the figures move")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold (nothing cached) timing")
    parser.add_argument("--timing-docs", type=int, default=0, metavar="N",
                        help="only time a cold pass over N long documents recombined from longdocs paragraphs")
    parser.add_argument("--json", default=None, metavar="OUT", help="write every figure to this JSON file")
    parser.add_argument("--crossval-lora", type=int, default=0, metavar="N",
                        help="banking77 only: compare, on a stratified subset of N texts with 20%% nearest-class "
                             "noise, the checks with and without the fine-tuned model's cross-validated "
                             "probabilities (training/crossval.py, [train] defaults: slow on a CPU)")
    args = parser.parse_args()
    if args.crossval_lora:
        train, test = pd.read_csv(DATA / "train.csv"), pd.read_csv(DATA / "test.csv")
        classes = sorted(train["category"].unique())
        index = {c: i for i, c in enumerate(classes)}
        emb_test = encode(test["text"].tolist(), cache_dir=CACHE)
        crossval_lora(train["text"].tolist(), train["category"].map(index).to_numpy(), classes,
                      n=args.crossval_lora, seed=args.seeds[0], emb_test=emb_test,
                      y_test=test["category"].map(index).to_numpy())
        return
    if args.timing_docs:
        figures = time_cold(args.timing_docs)
        if args.json:
            Path(args.json).write_text(json.dumps({"load_at_start": load_avg(), **figures}, indent=1))
        return
    result = {"machine": f"{platform.node()}: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}",
              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "load_at_start": load_avg(),
              "args": vars(args), "data": []}
    for name in args.data:
        result["data"].append(bench_data(name, args))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
    result["load_at_end"] = load_avg()
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
