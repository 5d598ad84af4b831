"""The model: base encoder + mean pooling + L2 normalisation + linear head, optionally LoRA-wrapped.

Why not AutoModelForSequenceClassification: its CLS-pooler head starts random and, on banking77 with MiniLM
on 2 CPU cores, was still below the fast head's test accuracy after many minutes of training (bench/train.py;
figures in the README's Benchmarks). Mean pooling + normalisation is exactly what `studio.embeddings.encode`
computes, so a logistic regression fitted on those embeddings (seconds) can be copied into the head: the model
starts at the fast head's accuracy and LoRA only has to improve it.

The head lives in peft's `modules_to_save`, so `PeftModel.save_pretrained` writes it beside the adapter and
`PeftModel.from_pretrained(build_classifier(...), adapter_dir)` restores the whole classifier.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from transformers import AutoModel
from transformers.modeling_outputs import SequenceClassifierOutput

from studio.embeddings import mean_pool_normalise
from studio.errors import ConfigError
from training.objective import Objective, SingleLabel

HEAD = "head"


class MeanPoolClassifier(nn.Module):
    """Encoder + mean pooling + L2 normalise + linear head. forward() returns loss (when labels) and logits.

    labels: the objective's targets ((B,) int64 class indices, or (B, K) float 0/1 for multi-label).
    logits: (B, K); the objective's probs (softmax or sigmoids) turns them into probabilities, and its loss
    (cross-entropy or binary cross-entropy) trains them.
    """

    def __init__(self, encoder: nn.Module, num_labels: int, *, objective: Objective | None = None,
                 class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config  # Trainer and peft look for model.config
        self.objective = objective or SingleLabel()
        self.num_labels = num_labels
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)
        weights = torch.as_tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        # Not persistent: the weights are a property of the training data, not of the model.
        self.register_buffer("class_weights", weights, persistent=False)
        # Set by add_lora(layers=N): the only blocks that train. A plain list, so not registered twice.
        self.trained_blocks: list[nn.Module] = []

    def train(self, mode: bool = True) -> "MeanPoolClassifier":
        """With trained_blocks set, the encoder below them stays in eval mode while training: those weights
        are frozen, so their dropout would only add noise to features the fast head was fitted on without
        dropout, and skipping it saves a sizeable share of a step's time on a 2-core CPU (measured in
        bench/train.py)."""
        super().train(mode)
        if mode and self.trained_blocks:
            self.encoder.eval()
            for block in self.trained_blocks:
                block.train(True)
        return self

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                **_: Any) -> SequenceClassifierOutput:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**inputs).last_hidden_state
        logits = self.head(mean_pool_normalise(hidden, attention_mask))
        loss = None
        if labels is not None:
            loss = self.objective.loss(logits, labels, self.class_weights)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def build_classifier(model_path: str, num_labels: int, *, objective: Objective | None = None,
                     class_weights: Sequence[float] | None = None) -> MeanPoolClassifier:
    """Load the base encoder from a local folder and put a fresh (K, D) head on it."""
    encoder = AutoModel.from_pretrained(model_path)
    return MeanPoolClassifier(encoder, num_labels, objective=objective, class_weights=class_weights)


def set_head(model: MeanPoolClassifier, weight: np.ndarray, bias: np.ndarray) -> None:
    """Copy a fitted linear head exactly: weight (K, D), bias (K,). Logits = embedding @ weight.T + bias."""
    k, d = model.head.weight.shape
    if weight.shape != (k, d) or bias.shape != (k,):
        raise ValueError(f"head shapes {weight.shape}, {bias.shape} do not match the model's ({k}, {d})")
    with torch.no_grad():
        model.head.weight.copy_(torch.as_tensor(weight, dtype=model.head.weight.dtype))
        model.head.bias.copy_(torch.as_tensor(bias, dtype=model.head.bias.dtype))


def linear_module_names(model: nn.Module) -> list[str]:
    """Distinct last-part names of the encoder's Linear layers: the valid `target_modules` values."""
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                   if isinstance(m, nn.Linear) and not name.startswith(HEAD)})


def _stacks(encoder: nn.Module) -> list[tuple[int, str, nn.ModuleList]]:
    return [(len(m), name, m) for name, m in encoder.named_modules() if isinstance(m, nn.ModuleList) and len(m) > 0]


def transformer_layers(encoder: nn.Module) -> tuple[str, int]:
    """(name, count) of the encoder's stack of transformer blocks, e.g. ("layer", 6) for BERT/MiniLM.

    The stack is the largest nn.ModuleList; its last name part is peft's `layers_pattern`.
    """
    stacks = _stacks(encoder)
    if not stacks:
        return "", 0
    count, name, _ = max(stacks, key=lambda s: s[0])
    return name.rsplit(".", 1)[-1], count


def transformer_stack(encoder: nn.Module) -> nn.ModuleList:
    """The encoder's stack of transformer blocks (the largest nn.ModuleList)."""
    return max(_stacks(encoder), key=lambda s: s[0])[2]


def add_lora(model: MeanPoolClassifier, *, r: int, alpha: int, dropout: float,
             target_modules: Sequence[str], layers: int = 0) -> nn.Module:
    """Wrap the classifier with LoRA adapters on `target_modules`; the head is trained fully and saved.

    layers: 0 = adapters in every transformer layer; N > 0 = only in the top N. Why: autograd stops at the
    lowest layer holding a trainable weight, so the frozen layers below it need no backward pass at all.
    """
    from peft import LoraConfig, get_peft_model

    available = linear_module_names(model.encoder)
    missing = [m for m in target_modules if m not in available]
    if missing:
        raise ConfigError(
            f"[train] target_modules = {list(target_modules)!r}: {missing} match no Linear layer of this encoder.",
            hint=f"pick from the encoder's Linear layers: {', '.join(available)}",
        )
    extra: dict[str, Any] = {}
    if layers:
        pattern, count = transformer_layers(model.encoder)
        if not 0 < layers <= count:
            raise ConfigError(
                f"[train] lora_layers = {layers!r}: this encoder has {count} transformer layers.",
                hint=f"set lora_layers to 0 (all layers) or an integer in [1, {count}]",
            )
        # The pattern pins the index to the block stack, so "...layer.5.attention..." means block 5.
        extra = {"layers_to_transform": list(range(count - layers, count)), "layers_pattern": pattern}
        model.trained_blocks = list(transformer_stack(model.encoder))[count - layers:]
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                        modules_to_save=[HEAD], **extra)
    return get_peft_model(model, config)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of every trainable tensor, to restore a starting point later."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def restore_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].device))
