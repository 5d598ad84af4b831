"""Benchmark: named-entity recognition (the "spans" task kind) on WNUT-17, section "training".

    .venv/bin/python bench/ner.py --max-train 300 --epochs 1          # a quick look (minutes on 2 cores)
    .venv/bin/python bench/ner.py --epochs 3 --json bench/out/ner.json  # the full train split

LoRA and full fine-tuning of the same encoder (TrainConfig defaults; full at lr 5e-5) through run_training on
wnut17train.conll (emerging.dev.conll as validation: best checkpoint and early stopping on its entity F1), then
the saved run reloaded as a SpanPredictor and scored on emerging.test.annotated: exact-match entity precision,
recall and F1 on character spans (studio.span_agreement.span_metrics), overall and per type. Throughput is Trainer's
train examples/s (evaluation on dev included) and the same with the evaluation time taken out; LoRA / full
ratios of both. Each variant runs in its own process (its peak RSS is its own). Prints figures; never passes
or fails. Data: ../shared/data/ner_wnut17 (CC BY 4.0, Derczynski et al. 2017).
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
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "ner_wnut17"
FILES = {"train": "wnut17train.conll", "validation": "emerging.dev.conll", "test": "emerging.test.annotated"}
LEARNING_RATES = {"lora": 1e-3, "full": 5e-5}  # full fine-tuning diverges at LoRA's rate (bench/train.py)
sys.path.insert(0, str(REPO))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def load_split(name: str, *, limit: int = 0, seed: int = 0):
    """The split as the curated spans layout (text, tokens, ner_tags, spans) + its entity types (sorted)."""
    import numpy as np
    import pandas as pd

    from studio.span_io import conll_to_records, read_conll

    records = conll_to_records(read_conll(DATA / FILES[name]))
    if limit and limit < len(records):
        keep = np.sort(np.random.default_rng(seed).choice(len(records), size=limit, replace=False))
        records = [records[i] for i in keep]
    types = sorted({s["label"] for r in records for s in r["spans"]})
    return pd.DataFrame([{"task_id": i, **r} for i, r in enumerate(records)]), types


def with_tags(frame, types: list[str]):
    """Add tokens (word_offsets) and ner_tags (spans_to_tags), as the studio's export does."""
    from studio.spans import spans_to_tags, word_offsets

    offsets = [word_offsets(t) for t in frame["text"]]
    return frame.assign(tokens=[[t[a:b] for a, b in o] for t, o in zip(frame["text"], offsets)],
                        ner_tags=[spans_to_tags(o, s, types) for o, s in zip(offsets, frame["spans"])])


def variant(args: argparse.Namespace, method: str) -> dict:
    import torch
    from transformers import TrainerCallback

    from studio.span_agreement import span_metrics
    from training.config import TrainConfig
    from training.data import CuratedData
    from training.predict import load_predictor
    from training.train import run_training

    if args.threads:
        torch.set_num_threads(args.threads)
    train, types = load_split("train", limit=args.max_train, seed=args.seed)
    validation, _ = load_split("validation")
    test, test_types = load_split("test")
    types = sorted(set(types) | set(test_types))
    data = CuratedData(train=with_tags(train, types), validation=with_tags(validation, types),
                       test=with_tags(test, types), class_names=types, task="spans",
                       version_id=f"wnut17-{len(train)}")
    lora = {} if args.lora_layers is None else {"lora_layers": args.lora_layers}
    cfg = TrainConfig(method=method, epochs=args.epochs, max_length=args.max_length, batch_size=args.batch_size,
                      learning_rate=args.lr or LEARNING_RATES[method], seed=args.seed, **lora)

    class EvalTime(TrainerCallback):
        """Sums the evaluation time Trainer logs, to take it out of the training throughput."""

        seconds = 0.0

        def on_log(self, args, state, control, logs=None, **kwargs):
            EvalTime.seconds += float((logs or {}).get("eval_runtime", 0.0))

    with tempfile.TemporaryDirectory() as runs:
        t0 = time.perf_counter()
        info = run_training(data, config=cfg, runs_root=runs, callbacks=[EvalTime()])
        run_s = time.perf_counter() - t0
        metrics = json.loads((info.path / "metrics.json").read_text())
        predictor = load_predictor(info.path)
        t0 = time.perf_counter()
        predicted = predictor.predict_spans(test["text"].tolist())
        predict_s = time.perf_counter() - t0
    scores = span_metrics(list(test["spans"].map(list)), predicted, types)
    examples = metrics["train_examples_per_s"] * metrics["train_time_s"]
    net_s = max(metrics["train_time_s"] - EvalTime.seconds, 1e-9)
    return {"variant": method, "learning_rate": cfg.learning_rate, "lora_layers": cfg.lora_layers,
            "lora_r": cfg.lora_r, "target_modules": cfg.target_modules, "train_rows": len(train),
            "epochs_done": metrics["epochs_done"], "global_step": metrics["global_step"],
            "train_time_s": metrics["train_time_s"], "eval_time_s": round(EvalTime.seconds, 1),
            "run_training_s": round(run_s, 1),
            "train_examples_per_s": metrics["train_examples_per_s"],
            "train_examples_per_s_without_eval": round(examples / net_s, 2),
            "test_entity_f1": scores["overall"]["f1"], "test_precision": scores["overall"]["precision"],
            "test_recall": scores["overall"]["recall"], "test_partial_f1": scores["partial"]["f1"],
            "test_per_type_f1": {t: round(v["f1"], 4) for t, v in scores["per_type"].items()},
            "test_support": {t: v["support"] for t, v in scores["per_type"].items()},
            "run_metrics_test_entity_f1": metrics["summary"]["entity_f1"],  # word tags; equal when spans align
            "validation_entity_f1": metrics[method].get("validation", {}).get("entity_f1"),
            "predict_test_s": round(predict_s, 1), "predict_texts_per_s": round(len(test) / predict_s, 1),
            "trainable_parameters": metrics["trainable_parameters"], "total_parameters": metrics["total_parameters"],
            "adapter_mb": round(metrics.get("adapter_size_bytes", 0) / 1e6, 2) or None,
            "torch_threads": torch.get_num_threads(), "peak_rss_mb": round(peak_rss_mb())}


def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--max-train", type=int, default=0, help="train sentences to use (0 = all 3,394)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--variants", default="lora,full")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: 1e-3 LoRA, 5e-5 full)")
    parser.add_argument("--lora-layers", type=int, default=None,
                        help="LoRA on the top N encoder blocks (0 = every block; default: TrainConfig's)")
    parser.add_argument("--json", default="", help="also write every figure to this JSON file")
    parser.add_argument("--only", default="", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"WNUT-17 not found at {DATA.resolve()}")
    if args.only:
        print("RESULT " + json.dumps(variant(args, args.only)))
        return
    results, loads = [], {"start": machine()["load_average"]}
    for name in args.variants.split(","):
        cmd = [sys.executable, __file__, "--only", name, *sys.argv[1:]]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode or not lines:
            print(f"{name}: FAILED\n{out.stderr[-3000:]}")
            continue
        result = json.loads(lines[-1][len("RESULT "):])
        result["process_wall_s"] = round(time.perf_counter() - t0, 1)
        result["load_average_after"] = machine()["load_average"]
        results.append(result)
        print(json.dumps(result), flush=True)
    loads["end"] = machine()["load_average"]
    by = {r["variant"]: r for r in results}

    print(f"\ntraining: WNUT-17, train sentences {args.max_train or 'all'}, epochs {args.epochs}, max_length "
          f"{args.max_length}, batch {args.batch_size}; {os.cpu_count()} cores, load average (1/5/15 min) "
          f"{loads['start']} at start, {loads['end']} at end")
    print(f"{'variant':<8} {'lr':>7} {'ex/s':>7} {'ex/s -eval':>10} {'trainable':>11} {'RSS MB':>7} "
          f"{'P':>7} {'R':>7} {'F1':>7} {'partial':>7}")
    for r in results:
        print(f"{r['variant']:<8} {r['learning_rate']:>7.0e} {r['train_examples_per_s']:>7} "
              f"{r['train_examples_per_s_without_eval']:>10} {r['trainable_parameters']:>11,} {r['peak_rss_mb']:>7} "
              f"{r['test_precision']:>7.4f} {r['test_recall']:>7.4f} {r['test_entity_f1']:>7.4f} "
              f"{r['test_partial_f1']:>7.4f}")
    types = sorted({t for r in results for t in r["test_per_type_f1"]})
    if results:
        support = results[0]["test_support"]
        print(f"per-type test F1 (exact; gold entities in test: {', '.join(f'{t} {support[t]}' for t in types)})")
        print(f"{'variant':<8} " + " ".join(f"{t[:13]:>13}" for t in types))
        for r in results:
            print(f"{r['variant']:<8} " + " ".join(f"{r['test_per_type_f1'][t]:>13.4f}" for t in types))
    ratios = {}
    if "lora" in by and "full" in by:
        lora, full = by["lora"], by["full"]
        ratios = {"examples_per_s": round(lora["train_examples_per_s"] / full["train_examples_per_s"], 2),
                  "examples_per_s_without_eval": round(lora["train_examples_per_s_without_eval"]
                                                       / full["train_examples_per_s_without_eval"], 2),
                  "entity_f1_difference": round(lora["test_entity_f1"] - full["test_entity_f1"], 4)}
        print(f"LoRA / full throughput: {ratios['examples_per_s']:.2f}x with dev evaluation, "
              f"{ratios['examples_per_s_without_eval']:.2f}x without; test entity F1 LoRA - full: "
              f"{ratios['entity_f1_difference']:+.4f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "section": "training", "settings": {k: v for k, v in vars(args).items() if k not in ("only", "json")},
            "data": {"path": str(DATA.resolve()), "files": FILES, "licence": "CC BY 4.0"},
            "machine": {"cpu_count": os.cpu_count(), "load_average": loads}, "variants": results, "ratios": ratios,
        }, indent=2))
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
