"""Load a registered run and predict class probabilities for texts (batched, no grad, any process).

Everything needed comes from the run folder (config.json, labels.json, tokenizer/, adapter/ or model/) plus
the base model folder recorded in config.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from studio.errors import TrainingError
from studio.types import PredProbs, ProgressFn
from training.artefacts import ADAPTER_DIR, FULL_MODEL_DIR, read_run
from training.objective import objective_for, task_of
from training.runs import RunRegistry
from training.token_predict import SpanPredictor


class Predictor:
    """A loaded run. `predict_proba(texts)` -> (N, K): the run's objective's probabilities (softmax rows for
    single-label, sigmoids for multi-label)."""

    def __init__(self, run_dir: Path, *, device: str | None = None) -> None:
        import torch
        from transformers import AutoTokenizer

        from training.lora import build_classifier

        self.run_dir = Path(run_dir)
        config, labels, base, tokenizer_from = read_run(self.run_dir)
        self.run_id: str = config["run_id"]
        self.class_names: list[str] = list(labels["class_names"])
        self.task: str = task_of(labels)
        self.objective = objective_for(self.task)
        self.max_length: int = int(config["train"]["max_length"])
        self.method: str = config["method"]
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
        k = len(self.class_names)
        if self.method == "lora":
            from peft import PeftModel

            model: Any = PeftModel.from_pretrained(build_classifier(base, k, objective=self.objective),
                                                   str(self.run_dir / ADAPTER_DIR))
        else:
            from safetensors.torch import load_file

            model = build_classifier(str(self.run_dir / FULL_MODEL_DIR / "encoder"), k,
                                     objective=self.objective)
            model.head.load_state_dict(load_file(str(self.run_dir / FULL_MODEL_DIR / "head.safetensors")))
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()

    def predict_proba(self, texts: Sequence[str], *, batch_size: int = 64,
                      progress: ProgressFn | None = None) -> PredProbs:
        """texts: N strings -> (N, K) float64 probabilities in class_names order."""
        import torch

        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), len(self.class_names)), dtype=np.float64)
        # Sorting by length keeps padding (and CPU time) low; rows are put back in input order.
        order = np.argsort([len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                idx = order[start:start + batch_size]
                batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt").to(self.device)
                logits = self.model(**batch).logits.float()
                probs = self.objective.torch_probs(logits)
                out[idx] = probs.cpu().numpy()
                if progress is not None:
                    progress(min(start + batch_size, len(texts)), len(texts))
        return out


def load_predictor(run: str | Path, *, runs_root: str | Path | None = None,
                   device: str | None = None) -> Predictor | SpanPredictor:
    """run: a run folder, or a run id (with runs_root), or "current" (with runs_root) for the promoted run.

    A spans run (labels.json task "spans") gives a SpanPredictor (training/token_predict.py); any other a
    Predictor. Both have run_id, class_names and task."""
    path = Path(run)
    if not (path / "config.json").exists():
        if runs_root is None:
            raise TrainingError(f"{run!r} is not a run folder and no runs_root was given to look it up.",
                                hint="pass the run folder, or runs_root=... with a run id")
        registry = RunRegistry(runs_root)
        if str(run) == "current":
            info = registry.current()
            if info is None:
                raise TrainingError(f"No run has been promoted under {runs_root}.",
                                    hint="train a model and promote it first")
        else:
            info = registry.get(str(run))
        if info.path is None:
            raise TrainingError(f"Run {info.id} has status '{info.status}' and no model to load.",
                                hint="pick a succeeded run")
        path = info.path
    labels = json.loads((Path(path) / "labels.json").read_text(encoding="utf-8"))
    if labels.get("task") == "spans":
        return SpanPredictor(Path(path), device=device)
    return Predictor(path, device=device)
