"""Benchmark: LoRA vs full fine-tuning vs logistic regression on frozen embeddings, on banking77.

    .venv/bin/python bench/train.py --limit 2000 --epochs 1        # a quick look (minutes on 2 cores)
    .venv/bin/python bench/train.py --epochs 2                     # the full train split (~10+ min per variant)
    .venv/bin/python bench/train.py --variants interleaved --one-click 0   # full vs LoRA default / q,v all / q,v top-1
    .venv/bin/python bench/train.py --variants lora --lora-layers 0        # LoRA in every layer (default: config's)

Each variant runs in its own process so its peak RSS is its own. Prints figures; never passes or fails.
Targets (2-core CPU): LoRA >= 2x the examples/s of full fine-tuning; LoRA test accuracy >= 0.935 on the full
train split; adapter <= 2 MB; one-click train (run_training end to end) on 1,000 labels <= 3 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "banking77"
sys.path.insert(0, str(REPO))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def load_split(name: str, classes: list[str] | None = None, *, limit: int = 0, seed: int = 0):
    import pandas as pd

    frame = pd.read_csv(DATA / f"{name}.csv")
    classes = classes or sorted(frame["category"].unique())
    index = {c: i for i, c in enumerate(classes)}
    frame = frame.assign(label=frame["category"].map(index), task_id=range(len(frame)))
    if limit and limit < len(frame):
        frame = frame.sample(n=limit, random_state=seed)
    return frame[["task_id", "text", "label"]].reset_index(drop=True), classes


def lora_overrides(args: argparse.Namespace) -> dict:
    """TrainConfig fields set on the command line (the rest keep the product's defaults)."""
    out: dict = {}
    if args.lora_layers >= 0:
        out["lora_layers"] = args.lora_layers
    if args.target_modules:
        out["target_modules"] = args.target_modules.split(",")
    if args.lora_r:
        out["lora_r"], out["lora_alpha"] = args.lora_r, 2 * args.lora_r
    if args.lora_dropout >= 0:
        out["lora_dropout"] = args.lora_dropout
    return out


def variant_logreg(args: argparse.Namespace) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    from studio.embeddings import encode
    from training.head import fit_linear_head

    train, classes = load_split("train", limit=args.limit)
    test, _ = load_split("test", classes, limit=args.test_limit)
    t0 = time.perf_counter()
    X = encode(train["text"].tolist(), max_length=args.max_length, cache_dir=args.cache_dir)
    t_enc = time.perf_counter() - t0
    head = fit_linear_head(X, train["label"].to_numpy(), num_classes=len(classes), C=10.0)
    t_fit = time.perf_counter() - t0 - t_enc
    pred = head.predict_proba(encode(test["text"].tolist(), max_length=args.max_length,
                                     cache_dir=args.cache_dir)).argmax(1)
    return {"variant": "logreg", "train_rows": len(train), "encode_s": round(t_enc, 1), "fit_s": round(t_fit, 1),
            "examples_per_s": round(len(train) / max(t_enc + t_fit, 1e-9), 1),
            "test_accuracy": accuracy_score(test["label"], pred),
            "test_macro_f1": f1_score(test["label"], pred, average="macro"), "trainable_parameters": head.weight.size
            + head.bias.size, "peak_rss_mb": round(peak_rss_mb())}


def variant_finetune(args: argparse.Namespace, method: str) -> dict:
    import pandas as pd

    from training.config import TrainConfig
    from training.data import CuratedData
    from training.train import run_training

    train, classes = load_split("train", limit=args.limit)
    test, _ = load_split("test", classes, limit=args.test_limit)
    # No validation split: Trainer's throughput then measures training alone, and the fine-tuned model (not
    # the better-on-validation choice) is what gets scored on test.
    data = CuratedData(train=train, validation=pd.DataFrame(), test=test, class_names=classes,
                       version_id=f"banking77-{len(train)}")
    cfg = TrainConfig(method=method, epochs=args.epochs, max_length=args.max_length,
                      learning_rate=1e-3 if method == "lora" else 5e-5,
                      **lora_overrides(args))
    with tempfile.TemporaryDirectory() as runs:
        info = run_training(data, config=cfg, runs_root=runs, cache_dir=args.cache_dir)
        metrics = json.loads((info.path / "metrics.json").read_text())
    return {"variant": method, "lora_layers": cfg.lora_layers, "target_modules": cfg.target_modules,
            "lora_r": cfg.lora_r, "lora_dropout": cfg.lora_dropout, "train_rows": len(train), "epochs": args.epochs,
            "examples_per_s": metrics["train_examples_per_s"], "train_time_s": metrics["train_time_s"],
            "test_accuracy": metrics["test"]["accuracy"], "test_macro_f1": metrics["test"]["macro_f1"],
            "fast_head_test_accuracy": metrics["fast_head"]["test"]["accuracy"],
            "trainable_parameters": metrics["trainable_parameters"],
            "adapter_mb": round(metrics.get("adapter_size_bytes", 0) / 1e6, 2) or None,
            "peak_rss_mb": round(peak_rss_mb())}


def variant_one_click(args: argparse.Namespace) -> dict:
    from training.config import TrainConfig
    from training.data import CuratedData
    from training.train import run_training

    labelled, classes = load_split("train", limit=args.one_click, seed=1)
    n_val = n_test = len(labelled) // 10
    data = CuratedData(train=labelled.iloc[n_val + n_test:], validation=labelled.iloc[:n_val],
                       test=labelled.iloc[n_val:n_val + n_test], class_names=classes, version_id="oneclick")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as runs, tempfile.TemporaryDirectory() as cache:
        cfg = TrainConfig(**lora_overrides(args))
        info = run_training(data, config=cfg, runs_root=runs, cache_dir=cache)  # cold cache: end to end
        metrics = json.loads((info.path / "metrics.json").read_text())
    return {"variant": "one_click", "lora_layers": cfg.lora_layers, "labels": len(labelled),
            "wall_s": round(time.perf_counter() - t0, 1),
            "selected": metrics["selected"], "test_accuracy": metrics["test"]["accuracy"],
            "adapter_mb": round(metrics.get("adapter_size_bytes", 0) / 1e6, 2) or None,
            "peak_rss_mb": round(peak_rss_mb())}


def variant_interleaved(args: argparse.Namespace) -> dict:
    """Full vs LoRA (the configured default; query/value in all layers; query/value in the top 1) steps alternated
    in one process on the same batches, so CPU contention from other processes hits every variant alike (the order
    rotates every round)."""
    import torch
    from transformers import AutoTokenizer

    from studio.models import resolve_model_path
    from training.lora import add_lora, build_classifier

    train, classes = load_split("train", limit=32 * args.rounds * 2)
    path = resolve_model_path("")
    tok = AutoTokenizer.from_pretrained(path)
    from training.config import TrainConfig

    cfg = TrainConfig(**lora_overrides(args))
    models = {"full": build_classifier(path, len(classes))}
    for name, layers, targets in (("lora_default", cfg.lora_layers, cfg.target_modules),
                                  ("lora_qv_all", 0, ["query", "value"]), ("lora_qv_top1", 1, ["query", "value"])):
        models[name] = add_lora(build_classifier(path, len(classes)), r=cfg.lora_r, alpha=cfg.lora_alpha,
                                dropout=cfg.lora_dropout, target_modules=targets, layers=layers)
    opts = {k: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4) for k, m in models.items()}
    names = list(models)
    spent = dict.fromkeys(models, 0.0)
    for i in range(args.rounds):
        rows = train.iloc[i * 32:(i + 1) * 32]
        batch = tok(rows["text"].tolist(), padding=True, truncation=True, max_length=args.max_length,
                    return_tensors="pt")
        labels = torch.as_tensor(rows["label"].to_numpy())
        for name in names[i % len(names):] + names[:i % len(names)]:
            models[name].train()
            t0 = time.perf_counter()
            loss = models[name](**batch, labels=labels).loss
            loss.backward()
            opts[name].step()
            opts[name].zero_grad()
            if i:  # the first round warms up every model
                spent[name] += time.perf_counter() - t0
    n = 32 * (args.rounds - 1)
    out: dict = {"variant": "interleaved", "rounds": args.rounds, "threads": torch.get_num_threads(),
                 "default": f"r={cfg.lora_r}, top {cfg.lora_layers or 'all'} layers, {','.join(cfg.target_modules)}"}
    for name in names:
        out[f"{name}_examples_per_s"] = round(n / spent[name], 1)
        out[f"{name}_speedup"] = round(spent["full"] / spent[name], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=0, help="train rows to use (0 = all 10,003)")
    parser.add_argument("--test-limit", type=int, default=0, help="test rows to score (0 = all 3,080)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--one-click", type=int, default=1000, help="labels for the one-click run (0 = skip)")
    parser.add_argument("--variants", default="logreg,lora,full,one_click,interleaved")
    parser.add_argument("--lora-layers", type=int, default=-1,
                        help="LoRA in the top N layers for the lora/one_click variants "
                             "(0 = all; -1 = TrainConfig's default)")
    parser.add_argument("--target-modules", default="", help="comma-separated LoRA targets (default: config's)")
    parser.add_argument("--lora-r", type=int, default=0, help="LoRA rank, alpha = 2r (0 = config's)")
    parser.add_argument("--lora-dropout", type=float, default=-1, help="LoRA dropout (-1 = config's)")
    parser.add_argument("--rounds", type=int, default=21, help="batches per method in the interleaved timing")
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "studio-bench-embeddings"))
    parser.add_argument("--only", default="", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"banking77 not found at {DATA.resolve()}")
    if args.only:
        runners = {"logreg": variant_logreg, "lora": lambda a: variant_finetune(a, "lora"),
                   "full": lambda a: variant_finetune(a, "full"), "one_click": variant_one_click,
                   "interleaved": variant_interleaved}
        print("RESULT " + json.dumps(runners[args.only](args)))
        return
    results = []
    for name in args.variants.split(","):
        if name == "one_click" and not args.one_click:
            continue
        cmd = [sys.executable, __file__, "--only", name, *sys.argv[1:]]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode or not lines:
            print(f"{name}: FAILED\n{out.stderr[-3000:]}")
            continue
        result = json.loads(lines[-1][len("RESULT "):])
        result["process_wall_s"] = round(time.perf_counter() - t0, 1)
        results.append(result)
        print(json.dumps(result), flush=True)
    by = {r["variant"]: r for r in results}
    print(f"\nbanking77, train rows {args.limit or 'all'}, epochs {args.epochs}, max_length {args.max_length}, "
          f"cpu threads {os.cpu_count()}")
    print(f"{'variant':<10} {'ex/s':>8} {'peak RSS MB':>12} {'trainable':>11} {'adapter MB':>10} {'acc':>7} "
          f"{'macro-F1':>8}")
    for r in results:
        if r["variant"] in ("one_click", "interleaved"):
            continue
        print(f"{r['variant']:<10} {r['examples_per_s']:>8} {r['peak_rss_mb']:>12} {r['trainable_parameters']:>11,} "
              f"{str(r.get('adapter_mb') or '-'):>10} {r['test_accuracy']:>7.4f} {r['test_macro_f1']:>8.4f}")
    if "lora" in by and "full" in by:
        ratio = by["lora"]["examples_per_s"] / by["full"]["examples_per_s"]
        print(f"LoRA / full throughput: {ratio:.2f}x (target >= 2x)")
    if "interleaved" in by:
        r = by["interleaved"]
        print(f"interleaved steps (same batches, rotating order, {r['rounds'] - 1} timed rounds, "
              f"{r['threads']} torch threads):")
        print(f"  (lora_default = the [train] config: {r['default']})")
        for name in ("full", "lora_default", "lora_qv_all", "lora_qv_top1"):
            print(f"  {name:<10} {r[name + '_examples_per_s']:>7} ex/s  {r[name + '_speedup']:>5}x full")
    if "one_click" in by:
        o = by["one_click"]
        print(f"one-click train on {o['labels']} labels: {o['wall_s']} s in run_training (process "
              f"{o['process_wall_s']} s), selected {o['selected']}, test acc {o['test_accuracy']:.4f} "
              "(target <= 180 s)")


if __name__ == "__main__":
    main()
