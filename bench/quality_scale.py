"""Benchmark: the warm quality pass at 10,000 and 100,000 tasks, exact vs approximate neighbour graph (issue 18).

    .venv/bin/python bench/quality_scale.py --cache /tmp/emb-cache             # 10k exact, 10k approx, 100k
    .venv/bin/python bench/quality_scale.py --cache /tmp/emb-cache --exact-100k  # also 100k with the exact graph
    .venv/bin/python bench/quality_scale.py --noise --data banking77 longdocs   # F1 exact vs approximate, 3 seeds

Data (as bench/scale.py): banking77's training texts (10,003, 77 intents), one label each (its intent); past
10,003 tasks the texts repeat with a suffix (" #2", " #3", ...), so at 100,000 every text has nine
near-duplicates (the suffix barely moves a MiniLM vector): the benchmark's data, not a real project's. The
embeddings come from the studio's cache (`--cache`; the first run encodes 100,000 texts: tens of minutes on 2
cores). "Warm" = embeddings read from the cache, libraries imported; each pass runs in a process of its own so its
peak RSS is its own. Each pass prints its seconds, peak RSS, the load, and a timer per stage (neighbour graph,
each probability candidate, each check); then the growth 10k -> 100k per stage (10.0 = linear) and the recall@10
of the approximate graph against the exact one (at 100k on a sample of rows).

`--noise`: bench/quality.py's measurement (its noise injection and figures) with the exact and the approximate
graph (`[quality] exact_knn_max_rows = 0`), the studio's default otherwise, label check only: F1 / precision /
recall / AUROC of the flagged labels, mean and standard deviation over the noise seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

#: The issue's targets at 100,000 tasks (2 cores): seconds, growth 10k -> 100k, peak RSS.
TARGET_S, MAX_GROWTH, RSS_LIMIT_MB = 300, 13.0, 8 * 1024


def data(size: int) -> tuple[list[str], np.ndarray, list[str]]:
    """(texts, (N,) class indices, class names) of bench/scale.py's `size` tasks."""
    from bench.scale import tasks_of

    rows, classes = tasks_of(size)
    index = {c: i for i, c in enumerate(classes)}
    return [t for t, _ in rows], np.array([index[c] for _, c in rows]), classes


def peak_mb() -> float:
    """This process's peak resident memory since the last `reset_peak` (Linux VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


class StageTimer:
    """Seconds per stage of `run_quality`, by wrapping the functions it calls: the neighbour graph, each probability
    candidate (both fits of a refit round added up) and each check. What is left is "other"."""

    def __init__(self) -> None:
        import studio.quality as quality
        from studio.checks import CHECKS
        from studio.probabilities import CANDIDATES

        self.seconds: dict[str, float] = {}
        quality.knn_graph = self._timed("neighbour graph", quality.knn_graph)
        for name, fn in list(CANDIDATES.items()):
            CANDIDATES[name] = self._timed(f"candidate {name}", fn)
        for name, cls in CHECKS.items():
            cls.run = self._timed(f"check {name}", cls.run)

    def _timed(self, stage: str, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start

        return wrapper


def one_pass(size: int, exact_max_rows: int | None, cache: str) -> dict:
    """A warm pass in this process: embeddings from the cache, then `run_quality` with every check (the default
    config but for the threshold, None = default)."""
    from studio.embeddings import encode
    from studio.quality import QualityConfig, run_quality

    texts, y, classes = data(size)
    config = QualityConfig() if exact_max_rows is None else QualityConfig(exact_knn_max_rows=exact_max_rows)
    small = min(size, 2000)  # warm-up: imports, faiss, BLAS
    run_quality(texts[:small], y[:small], classes, embeddings=encode(texts[:small], cache_dir=cache),
                config=QualityConfig(exact_knn_max_rows=0))
    timer = StageTimer()
    reset_peak()
    load_before, start = os.getloadavg()[0], time.perf_counter()
    emb = encode(texts, cache_dir=cache)
    embed_s = time.perf_counter() - start
    report = run_quality(texts, y, classes, embeddings=emb, config=config)
    seconds = time.perf_counter() - start
    stages = {"embeddings from cache": embed_s, **timer.seconds}
    stages["other"] = seconds - sum(stages.values())
    return {"size": size, "graph": "exact" if size <= config.exact_knn_max_rows else "approximate",
            "seconds": round(seconds, 1), "peak_rss_mb": round(peak_mb()),
            "load": f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}",
            "stages": {k: round(v, 2) for k, v in stages.items()},
            "flagged": {t: int(report.flagged(t).shape[0]) for t in ("label_issue", "outlier", "near_duplicate")}}


def recall_figures(size: int, cache: str, *, sample: int = 2000, k: int = 10) -> dict:
    """recall@k of the approximate graph against the exact one: the share of its neighbours at least as similar
    as the exact k-th (ties count as found), and the plain set overlap. Above 20,000 rows on `sample` rows."""
    from threadpoolctl import threadpool_limits

    from studio.checks.neighbours import knn_graph
    from studio.embeddings import encode

    texts, _, _ = data(size)
    x = encode(texts, cache_dir=cache)
    with threadpool_limits(limits=1):
        approx = knn_graph(x, k=k, exact_max_rows=0)
        rows = (np.arange(size) if size <= 20_000 else
                np.sort(np.random.default_rng(0).choice(size, size=sample, replace=False)))
        block = x[rows] @ x.T
        block[np.arange(len(rows)), rows] = -np.inf
        exact_idx = np.argsort(-block, axis=1, kind="stable")[:, :k]
        exact_sims = np.take_along_axis(block, exact_idx, axis=1)
    found = approx.similarities[rows] >= exact_sims[:, -1:] - 1e-5
    overlap = np.mean([len(set(a) & set(b)) for a, b in zip(approx.indices[rows], exact_idx)]) / k
    return {"size": size, "rows": len(rows), f"recall@{k}": round(float(found.mean()), 4),
            f"set_overlap@{k}": round(float(overlap), 4)}


def child(args: list[str]) -> dict:
    """Run `--one ...` in a fresh process (its own peak RSS) and return its JSON line."""
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def scale(args: argparse.Namespace) -> dict:
    plan = [(10_000, 10**9), (10_000, 0), (100_000, None)] + ([(100_000, 10**9)] if args.exact_100k else [])
    runs = []
    for size, threshold in plan:
        row = child(["--one", str(size), str(-1 if threshold is None else threshold), "--cache", args.cache])
        runs.append(row)
        print(f"{size:>8,} {row['graph']:<12}{row['seconds']:>8.1f} s  peak RSS {row['peak_rss_mb']:>6} MB  "
              f"load {row['load']}  flagged {row['flagged']}", flush=True)
        print("          " + "; ".join(f"{k} {v:.1f} s" for k, v in row["stages"].items()), flush=True)
    small = next(r for r in runs if r["size"] == 10_000 and r["graph"] == "exact")
    print("\ngrowth 10k (exact graph) -> 100k (10.0 = linear):")
    for large in (r for r in runs if r["size"] == 100_000):
        print(f"  100k {large['graph']}: pass {large['seconds'] / small['seconds']:.1f}x (target <= {MAX_GROWTH:g}x); "
              + "; ".join(f"{k} {v / max(small['stages'].get(k, 0), 1e-9):.1f}x"
                          for k, v in large["stages"].items() if small["stages"].get(k, 0) >= 0.05))
        print(f"  100k {large['graph']}: {large['seconds']:.0f} s (target <= {TARGET_S} s), peak RSS "
              f"{large['peak_rss_mb']} MB (target <= {RSS_LIMIT_MB} MB)")
    recalls = [child(["--recall", str(size), "--cache", args.cache]) for size in (10_000, 100_000)]
    for r in recalls:
        print(f"approximate vs exact graph at {r['size']:,} ({r['rows']:,} rows compared): " +
              ", ".join(f"{k} {v}" for k, v in r.items() if "@" in k))
    return {"runs": runs, "recall": recalls}


def _flag_figures(texts, noisy, err, classes, emb, config) -> dict[str, float]:
    """bench/quality.py's figures of the studio's label check with `config` on one noisy labelling."""
    from threadpoolctl import threadpool_limits

    from bench.quality import detection, worst_share
    from studio.quality import run_quality

    with threadpool_limits(limits=1):
        rep = run_quality(texts, noisy, classes, embeddings=emb, checks=["label_issue"], config=config)
    rows = rep.issues.sort_values("task_index")
    flagged, score = rows["is_issue"].to_numpy(), rows["score"].to_numpy()
    figures = {k: float(v) for k, v in detection(err, flagged, score).items()}
    return {**figures, "worst2%": worst_share(err, score)}


def _spread(figures: list[dict]) -> dict:
    """Mean and standard deviation over seeds of each figure."""
    return {k: {"mean": round(float(np.mean([f[k] for f in figures])), 4),
                "sd": round(float(np.std([f[k] for f in figures], ddof=1)) if len(figures) > 1 else 0.0, 4)}
            for k in figures[0]}


def noise(args: argparse.Namespace) -> dict:
    """F1 / P / R / AUROC of the flagged labels, exact vs approximate graph, over noise seeds (bench/quality.py's
    injection)."""
    from bench.quality import CACHE, inject, load
    from studio.embeddings import encode
    from studio.quality import QualityConfig, dense_view

    graphs = {"exact": QualityConfig(exact_knn_max_rows=10**9, dense_view=args.dense_view),
              "approximate": QualityConfig(exact_knn_max_rows=0, dense_view=args.dense_view)}
    out = []
    for name in args.data:
        texts, y, classes = load(name)
        use_dense, _ = dense_view(texts, graphs["exact"])
        # The embeddings place "nearest class" noise (bench/quality.py); long documents embedded whole take minutes,
        # so they are encoded only when that noise is asked for.
        emb_all = encode(texts, cache_dir=args.cache or CACHE) if use_dense or "nearest" in args.modes else None
        emb = emb_all if use_dense else None
        for mode in args.modes:
            for rate in args.rates:
                cells: dict[str, list[dict]] = {graph: [] for graph in graphs}
                for seed in args.seeds:
                    noisy = inject(y, emb_all, rate=rate, mode=mode, seed=seed)
                    for graph, config in graphs.items():
                        cells[graph].append(_flag_figures(texts, noisy, noisy != y, classes, emb, config))
                line = {"data": name, "dense_view": args.dense_view, "mode": mode, "rate": rate,
                        "seeds": list(args.seeds), "load": f"{os.getloadavg()[0]:.1f}",
                        **{graph: _spread(figures) for graph, figures in cells.items()},
                        "F1 difference per seed": [round(a["F1"] - e["F1"], 4)
                                                   for a, e in zip(cells["approximate"], cells["exact"])]}
                out.append(line)
                shown = "  ".join(f"{g}: " + " ".join(f"{k} {v['mean']:.3f}±{v['sd']:.3f}"
                                                      for k, v in line[g].items() if k != "worst2%") for g in graphs)
                print(f"{name} ({args.dense_view}) {rate:.0%} {mode} (seeds {args.seeds}, load {line['load']}): "
                      f"{shown}  approx-exact F1 per seed {line['F1 difference per seed']}", flush=True)
    return {"noise": out}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", default=str(REPO / "bench" / "out" / "emb_cache"),
                        help="the embedding cache folder (studio.embeddings.encode)")
    parser.add_argument("--exact-100k", action="store_true", help="also time 100k with the exact graph (slow)")
    parser.add_argument("--noise", action="store_true", help="F1 exact vs approximate graph instead of timing")
    parser.add_argument("--data", nargs="+", default=["banking77"], choices=["banking77", "longdocs", "convabuse"])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.2])
    parser.add_argument("--modes", nargs="+", default=["uniform", "nearest"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--dense-view", default="auto", choices=["auto", "always", "never"],
                        help="--noise: [quality] dense_view ('never' = the TF-IDF view and its neighbour graph)")
    parser.add_argument("--json", metavar="OUT", help="write every figure to this JSON file")
    parser.add_argument("--one", nargs=2, type=int, metavar=("SIZE", "EXACT_MAX"), help=argparse.SUPPRESS)
    parser.add_argument("--recall", type=int, metavar="SIZE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child process: one pass, one JSON line
        size, threshold = args.one
        print(json.dumps(one_pass(size, None if threshold < 0 else threshold, args.cache)))
        return
    if args.recall:
        print(json.dumps(recall_figures(args.recall, args.cache)))
        return
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    result = {"started": started, "cpus": os.cpu_count(), "load_at_start": os.getloadavg()[0],
              **(noise(args) if args.noise else scale(args)), "load_at_end": os.getloadavg()[0]}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"written {args.json}")


if __name__ == "__main__":
    main()
