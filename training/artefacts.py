"""Writing a run folder's files (called on the temporary folder; training/runs.py renames it into place), and
reading back what a predictor or generator needs. A generation run (training/sft.py) has the same files plus
examples.parquet (answers side by side); its config.json holds the [sft] settings under "sft"."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from training.config import TrainConfig
from training.data import CuratedData
from training.runs import write_json_atomic

if TYPE_CHECKING:
    from training.sft_config import SFTConfig

ADAPTER_DIR = "adapter"  # PEFT format: adapter_config.json + adapter_model.safetensors (LoRA + head)
FULL_MODEL_DIR = "model"  # method=full: encoder/ (save_pretrained) + head.safetensors; spans: the whole model
TOKENIZER_DIR = "tokenizer"
#: classification and spans runs: task_id, split, truth, pred per task of validation and the reported split
#: (training/compare.py scores runs again on the tasks they share).
PREDICTIONS_FILE = "predictions.parquet"
EXAMPLES_FILE = "examples.parquet"  # generation runs: prompt, reference, base and fine-tuned answers
MODELS_DIR = "models"  # beside the runs root (<state>/models): converted base models (training/llm.py)


def dir_size_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__}


def save_model(model: Any, folder: Path, *, method: str, task: str = "single_label") -> None:
    """LoRA: the PEFT adapter (with the head, a modules_to_save). Full: encoder folder + head weights, or for
    spans the token-classification model's own save_pretrained folder."""
    if method == "lora":
        model.save_pretrained(str(folder / ADAPTER_DIR))
        return
    if task == "spans":
        model.save_pretrained(str(folder / FULL_MODEL_DIR))
        return
    from safetensors.torch import save_file

    target = folder / FULL_MODEL_DIR
    model.encoder.save_pretrained(str(target / "encoder"))
    save_file({k: v.contiguous() for k, v in model.head.state_dict().items()}, str(target / "head.safetensors"))


def _settings(cfg: TrainConfig) -> list[str]:
    return ["## Settings", "```toml", "[train]", *[f"{k} = {json.dumps(v)}" for k, v in cfg.to_dict().items()],
            "```", ""]


def token_model_card(run_id: str, curated: CuratedData, cfg: TrainConfig, model_path: str,
                     metrics: dict[str, Any]) -> str:
    s = metrics["summary"]
    report = metrics.get(s["split"], {})
    lines = [
        f"# {run_id}",
        "",
        f"Token classification (named entities, {len(curated.class_names)} types: "
        f"{', '.join(curated.class_names)}; BIO tags on the words of `studio.spans.word_offsets`), "
        f"{cfg.method} fine-tuning of `{model_path}` with a linear tag classifier on each word's first sub-token.",
        "",
        "## Data",
        f"- data version: `{curated.version_id}`, snapshot: `{curated.snapshot_id or '-'}`"
        f", test set: `{curated.test_set.get('hash') or '-'}`",
        f"- rows: {curated.counts()}",
        "",
        "## Results",
        f"- {s['split']}: entity F1 {s['entity_f1']:.4f} (precision {s['precision']:.4f}, recall {s['recall']:.4f}; "
        f"exact entities), macro-F1 over types {s['macro_f1']:.4f}, token accuracy {s['accuracy']:.4f}",
        *[f"  - {t}: F1 {v['f1']:.4f} ({v['support']} entities)" for t, v in report.get("per_class", {}).items()],
        f"- training time: {metrics['train_time_s']:.0f} s, "
        f"trainable parameters: {metrics['trainable_parameters']:,}",
        "",
        *_settings(cfg),
        "## Use",
        "```python",
        "from training.predict import load_predictor",
        f"predictor = load_predictor({run_id!r}, runs_root=...)",
        "spans = predictor.predict_spans(['some text'])  # per text [{start, end, label, text, score}, ...]",
        "```",
        "",
    ]
    return "\n".join(lines)


def model_card(run_id: str, curated: CuratedData, cfg: TrainConfig, model_path: str,
               metrics: dict[str, Any]) -> str:
    if curated.task == "spans":
        return token_model_card(run_id, curated, cfg, model_path, metrics)
    s = metrics["summary"]
    fast = metrics.get("fast_head", {})
    lines = [
        f"# {run_id}",
        "",
        f"Text classifier ({curated.objective.title}, "
        f"{len(curated.class_names)} classes), {cfg.method} fine-tuning of `{model_path}` with mean pooling, "
        "L2 normalisation and a linear head initialised from logistic regression on frozen embeddings.",
        "",
        "## Data",
        f"- data version: `{curated.version_id}`, snapshot: `{curated.snapshot_id or '-'}`"
        f", test set: `{curated.test_set.get('hash') or '-'}`",
        f"- rows: {curated.counts()}",
        "",
        "## Results",
        f"- selected model: **{s['selected']}** (the better of the fast head and the fine-tuned model on "
        "validation macro-F1)",
        f"- {s['split']}: accuracy {s['accuracy']:.4f}, macro-F1 {s['macro_f1']:.4f}",
    ]
    for split in ("validation", "test"):
        if split in fast:
            lines.append(f"- fast head (logistic regression) on {split}: accuracy {fast[split]['accuracy']:.4f}, "
                         f"macro-F1 {fast[split]['macro_f1']:.4f}")
    lines += [
        f"- training time: {metrics['train_time_s']:.0f} s, "
        f"trainable parameters: {metrics['trainable_parameters']:,}",
        "",
        *_settings(cfg),
        "## Use",
        "```python",
        "from training.predict import load_predictor",
        f"predictor = load_predictor({run_id!r}, runs_root=...)",
        "probs = predictor.predict_proba(['some text'])  # (N, K)",
        "```",
        "",
    ]
    return "\n".join(lines)


def predictions_frame(split: str, task_ids: Sequence[Any], truth: Sequence[Any], pred: Sequence[Any]) -> pd.DataFrame:
    """One split's rows of predictions.parquet. truth / pred: class indices (single-label), 0/1 lists
    (multi-label) or BIO tag lists (spans)."""
    return pd.DataFrame({"task_id": np.asarray(task_ids, dtype=np.int64), "split": split,
                         "truth": list(truth), "pred": list(pred)})


def write_run(folder: Path, *, run_id: str, curated: CuratedData, cfg: TrainConfig, model_path: str,
              model: Any, tokenizer: Any, metrics: dict[str, Any],
              predictions: Sequence[pd.DataFrame] = ()) -> None:
    """Write every file of a run into `folder` (a temporary folder until the registry renames it)."""
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    save_model(model, folder, method=cfg.method, task=curated.task)
    tokenizer.save_pretrained(str(folder / TOKENIZER_DIR))
    if cfg.method == "lora":
        metrics["adapter_size_bytes"] = dir_size_bytes(folder / ADAPTER_DIR)
    write_json_atomic(folder / "config.json", {
        "run_id": run_id, "train": cfg.to_dict(), "base_model_path": model_path, "method": cfg.method,
        "task": curated.task,
        "num_labels": len(curated.tag_names or []) if curated.task == "spans" else len(curated.class_names),
        "class_weights": curated.class_weights, "versions": _versions(),
    })
    write_json_atomic(folder / "data.json", {
        "version_id": curated.version_id, "snapshot_id": curated.snapshot_id, "counts": curated.counts(),
        "test_set": curated.test_set, "created": created,
    })
    if curated.task == "spans":  # class_names are the entity types; the model's labels are the BIO tags
        labels = {"task": "spans", "class_names": curated.class_names, "tag_names": curated.tag_names,
                  "id2label": {str(i): n for i, n in enumerate(curated.tag_names or [])}}
    else:
        labels = {"task": curated.task, "class_names": curated.class_names,
                  "id2label": {str(i): n for i, n in enumerate(curated.class_names)}}
    write_json_atomic(folder / "labels.json", labels)
    frames = [f for f in predictions if len(f)]
    if frames:
        pd.concat(frames, ignore_index=True).to_parquet(folder / PREDICTIONS_FILE, index=False)
    write_json_atomic(folder / "metrics.json", metrics)
    (folder / "README.md").write_text(model_card(run_id, curated, cfg, model_path, metrics), encoding="utf-8")


def write_generation_run(folder: Path, *, run_id: str, curated: CuratedData, cfg: SFTConfig, model_path: str,
                         model: Any, tokenizer: Any, metrics: dict[str, Any],
                         examples: pd.DataFrame | None = None) -> None:
    """Every file of a generation run: adapter/ (peft), tokenizer/, config.json, data.json, labels.json,
    metrics.json, examples.parquet (when the run was evaluated) and README.md."""
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    model.save_pretrained(str(folder / ADAPTER_DIR))
    tokenizer.save_pretrained(str(folder / TOKENIZER_DIR))
    metrics["adapter_size_bytes"] = dir_size_bytes(folder / ADAPTER_DIR)
    write_json_atomic(folder / "config.json", {
        "run_id": run_id, "task": "generation", "section": cfg.SECTION, "sft": cfg.to_dict(),
        "base_model_path": model_path, "method": "lora", "versions": _versions(),
    })
    write_json_atomic(folder / "data.json", {
        "version_id": curated.version_id, "snapshot_id": curated.snapshot_id, "counts": curated.counts(),
        "test_set": curated.test_set, "created": created,
    })
    write_json_atomic(folder / "labels.json", {"task": "generation", "class_names": [], "id2label": {}})
    if examples is not None:
        examples.to_parquet(folder / EXAMPLES_FILE, index=False)
    write_json_atomic(folder / "metrics.json", metrics)
    (folder / "README.md").write_text(generation_model_card(run_id, curated, cfg, model_path, metrics),
                                      encoding="utf-8")


def generation_model_card(run_id: str, curated: CuratedData, cfg: SFTConfig, model_path: str,
                          metrics: dict[str, Any]) -> str:
    base, tuned = metrics.get("base", {}), metrics.get("fine_tuned", {})
    rows = [("ROUGE-L", "rouge_l", ".3f"), ("chrF", "chrf", ".1f"), ("embedding similarity", "embedding_similarity",
            ".3f"), ("reference perplexity (lower = better)", "perplexity", ".2f"), ("answer words", "response_words",
            ".0f"), ("generated tokens/s", "generation_tokens_per_s", ".1f")]
    table = ["| | base | fine-tuned |", "|---|---|---|"]
    table += [f"| {label} | {base[key]:{fmt}} | {tuned[key]:{fmt}} |" for label, key, fmt in rows
              if key in base and key in tuned]
    lines = [
        f"# {run_id}", "",
        f"Instruction -> response model: LoRA supervised fine-tuning (TRL SFTTrainer, loss on the answers only) of "
        f"`{model_path}`.", "",
        "## Data",
        f"- data version: `{curated.version_id}`, snapshot: `{curated.snapshot_id or '-'}`"
        f", test set: `{curated.test_set.get('hash') or '-'}`",
        f"- rows: {curated.counts()}", "",
        "## Results",
        (f"On {metrics['n_eval_prompts']} {metrics.get('eval_split', 'test')} prompts (greedy answers; the base "
         "model is the same weights without the adapter):" if tuned else "Not evaluated (no test or validation "
         "split, or eval_prompts = 0)."), "",
        *(table if tuned else []), "",
        f"- training: {metrics['train_time_s']:.0f} s, {metrics['train_tokens_per_s']:.0f} tokens/s, "
        f"{metrics['global_step']} steps; trainable parameters: {metrics['trainable_parameters']:,}", "",
        "## Settings", "```toml", "[sft]", *[f"{k} = {json.dumps(v)}" for k, v in cfg.to_dict().items()], "```", "",
        "## Use", "```python", "from training.generate import Generator",
        "generator = Generator.from_run('<runs root>/" + run_id + "')",
        "answers = generator.generate(['How do I reset my password?'])  # .texts, .mean_logprobs", "```", "",
    ]
    return "\n".join(lines)


def read_run(run_dir: Path, *, models_dir: str | Path | None = None) -> tuple[dict[str, Any], dict[str, Any], str, str]:
    """What every predictor reads from a run folder: (config.json, labels.json, the base model folder, where to load
    the tokenizer from). A base model folder that moved (another machine) falls back to the configured one; for a
    generation run that is resolved under `models_dir` (default: the models folder beside the runs root)."""
    from studio.models import resolve_model_path

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    labels = json.loads((run_dir / "labels.json").read_text(encoding="utf-8"))
    base = config["base_model_path"]
    if not Path(base).exists():
        if config.get("task") == "generation":
            from training.llm import resolve_causal_lm

            base = resolve_causal_lm(config["sft"].get("base_model", ""),
                                     models_dir=models_dir or run_dir.resolve().parent.parent / MODELS_DIR)
        else:
            base = resolve_model_path(config["train"].get("base_model", ""))
    tokenizer_dir = run_dir / TOKENIZER_DIR
    return config, labels, base, str(tokenizer_dir if tokenizer_dir.exists() else base)

