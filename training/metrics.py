"""Classification metrics from probabilities: numpy in, plain JSON-ready dicts out; and the few sentences the
CLI and the pages say about a run's metrics.json, for classification and spans runs alike (the entity-level
figures themselves are computed in training/tokens.py)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

#: multi-label decision threshold on each class's sigmoid probability.
THRESHOLD = 0.5


def _decide(probs: np.ndarray, multi_label: bool) -> np.ndarray:
    return (probs >= THRESHOLD).astype(int) if multi_label else probs.argmax(axis=1)


def _truth(y: np.ndarray, multi_label: bool) -> np.ndarray:
    return (np.asarray(y) > 0.5).astype(int) if multi_label else np.asarray(y, dtype=np.int64)


def summary_metrics(y: np.ndarray, probs: np.ndarray, *, multi_label: bool) -> dict[str, float]:
    """accuracy (exact-match for multi-label) and macro-F1 over the K classes.

    y: (N,) class indices or (N, K) 0/1. probs: (N, K). Higher = better for both.
    """
    truth, pred = _truth(y, multi_label), _decide(probs, multi_label)
    return {
        "accuracy": float(accuracy_score(truth, pred)),
        # sklearn averages over the classes present in truth or prediction (single-label), so a class absent
        # from a small validation split neither drags the figure to 0 nor lifts it to 1.
        "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),
    }


def full_report(y: np.ndarray, probs: np.ndarray, *, class_names: list[str], multi_label: bool) -> dict[str, Any]:
    """summary_metrics + per-class precision/recall/F1/support + confusion matrix (rows = truth)."""
    k = len(class_names)
    truth, pred = _truth(y, multi_label), _decide(probs, multi_label)
    p, r, f, s = precision_recall_fscore_support(truth, pred, labels=None if multi_label else list(range(k)),
                                                 zero_division=0)
    report: dict[str, Any] = summary_metrics(y, probs, multi_label=multi_label)
    report["n"] = int(len(truth))
    report["per_class"] = {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                  "support": int(s[i])} for i, name in enumerate(class_names)}
    if multi_label:
        # One 2x2 matrix per class: [[tn, fp], [fn, tp]].
        report["confusion_matrix"] = [[[int(((truth[:, i] == a) & (pred[:, i] == b)).sum()) for b in (0, 1)]
                                       for a in (0, 1)] for i in range(k)]
    else:
        report["confusion_matrix"] = confusion_matrix(truth, pred, labels=list(range(k))).tolist()
    return report


def trainer_metrics(*, multi_label: bool) -> Callable[[Any], dict[str, float]]:
    """A `compute_metrics` for transformers' Trainer: logits -> probabilities -> summary_metrics."""

    def compute(eval_pred: Any) -> dict[str, float]:
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        logits = logits[0] if isinstance(logits, tuple) else logits
        return summary_metrics(labels, logits_to_probs(np.asarray(logits), multi_label=multi_label),
                               multi_label=multi_label)

    return compute


def logits_to_probs(logits: np.ndarray, *, multi_label: bool) -> np.ndarray:
    """(N, K) logits -> (N, K) probabilities (sigmoid for multi-label, row softmax otherwise)."""
    from studio.mathops import sigmoid, softmax

    z = logits.astype(np.float64)
    return sigmoid(z) if multi_label else softmax(z, axis=1)


MODEL_NAMES = {"fast_head": "the fast head (logistic regression on the frozen encoder)", "lora": "the LoRA adapter",
               "full": "the fully fine-tuned model"}


def validation_macro_f1(metrics: dict[str, Any]) -> tuple[str, float | None, float | None]:
    """(the fine-tuning method's key in metrics.json, the fast head's and the fine-tuned model's validation
    macro-F1, None where there is none) of a run's metrics.json."""
    from training.config import METHODS

    method = next((k for k in METHODS if k in metrics), METHODS[0])
    fast = (metrics.get("fast_head") or {}).get("validation", {}).get("macro_f1")
    return method, fast, (metrics.get(method) or {}).get("validation", {}).get("macro_f1")


def is_spans(metrics: dict[str, Any]) -> bool:
    """Whether a run's metrics.json (or its "summary", a RunInfo.metrics) is a spans run's: entity-level figures."""
    return metrics.get("task") == "spans" or "entity_f1" in metrics or "entity_f1" in metrics.get("summary", {})


def entity_scores(summary: dict[str, Any]) -> str:
    """A spans run's summary (or one split's report) in words: "entity F1 0.392 (precision 0.410, recall 0.375)"."""
    nan = float("nan")
    return (f"entity F1 {summary.get('entity_f1', nan):.3f} (precision {summary.get('precision', nan):.3f}, "
            f"recall {summary.get('recall', nan):.3f})")


def model_choice_line(metrics: dict[str, Any]) -> str:
    """Which model a run kept and why, from its metrics.json: the fine-tuned model is kept only if it beats the
    fast head's validation macro-F1 (training/train.py), so a person should see both figures, not only the winner.
    A spans run has no fast head (training/tokens.py): the line names the fine-tuned model and its validation
    entity F1."""
    if is_spans(metrics):
        return _spans_choice_line(metrics)
    selected = metrics.get("selected")
    if not selected:
        return ""
    tuned_name, fast, tuned = validation_macro_f1(metrics)
    kept = MODEL_NAMES.get(selected, selected)
    if fast is None or tuned is None:
        return f"Kept {kept} (no validation split to compare the two models on)."
    other = MODEL_NAMES[tuned_name] if selected == "fast_head" else MODEL_NAMES["fast_head"]
    kept_f1, other_f1 = (fast, tuned) if selected == "fast_head" else (tuned, fast)
    return (f"Kept {kept}: validation macro-F1 {kept_f1:.3f}, against {other_f1:.3f} for {other}"
            + (" (the fine-tuning did not beat the fast head it started from; more labels or epochs may help)."
               if selected == "fast_head" else "."))


def _spans_choice_line(metrics: dict[str, Any]) -> str:
    from training.config import METHODS

    method = (metrics.get("selected") or metrics.get("summary", {}).get("selected")
              or next((k for k in METHODS if k in metrics), ""))
    if not method:
        return ""
    model = MODEL_NAMES.get(method, method)
    validation = (metrics.get(method) or {}).get("validation")
    if not validation or validation.get("entity_f1") is None:
        return (f"The model is {model} (token classification; there is no fast head to compare it with, and no "
                "validation split to score it on).")
    return (f"The model is {model} (token classification; there is no fast head to compare it with): validation "
            f"{entity_scores(validation)}.")
