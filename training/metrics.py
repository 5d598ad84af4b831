"""Classification metrics from probabilities: numpy in, plain JSON-ready dicts out; and the few sentences the
CLI and the pages say about a run's metrics.json, for classification, spans and generation runs alike (the
entity-level figures themselves are computed in training/tokens.py, the generation figures in
training/gen_eval.py; `GenerationMetrics` reads those)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from training.objective import Objective


def summary_metrics(y: np.ndarray, probs: np.ndarray, *, objective: Objective) -> dict[str, float]:
    """accuracy (exact-match for multi-label) and macro-F1 over the K classes.

    y: the objective's targets ((N,) class indices or (N, K) 0/1). probs: (N, K). Higher = better for both.
    """
    truth, pred = objective.truth(y), objective.decide(probs)
    return {
        "accuracy": float(accuracy_score(truth, pred)),
        # sklearn averages over the classes present in truth or prediction (single-label), so a class absent
        # from a small validation split neither drags the figure to 0 nor lifts it to 1.
        "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),
    }


def full_report(y: np.ndarray, probs: np.ndarray, *, class_names: list[str], objective: Objective) -> dict[str, Any]:
    """summary_metrics + per-class precision/recall/F1/support + the objective's confusion matrix."""
    k = len(class_names)
    truth, pred = objective.truth(y), objective.decide(probs)
    # labels= fixes the class order for class indices; 0/1 rows are in class order already.
    p, r, f, s = precision_recall_fscore_support(truth, pred, labels=list(range(k)) if truth.ndim == 1 else None,
                                                 zero_division=0)
    report: dict[str, Any] = summary_metrics(y, probs, objective=objective)
    report["n"] = int(len(truth))
    report["per_class"] = {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                  "support": int(s[i])} for i, name in enumerate(class_names)}
    report["confusion_matrix"] = objective.confusion(truth, pred, k)
    return report


def trainer_metrics(*, objective: Objective) -> Callable[[Any], dict[str, float]]:
    """A `compute_metrics` for transformers' Trainer: logits -> probabilities -> summary_metrics."""

    def compute(eval_pred: Any) -> dict[str, float]:
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        logits = logits[0] if isinstance(logits, tuple) else logits
        return summary_metrics(labels, objective.probs(np.asarray(logits)), objective=objective)

    return compute


MODEL_NAMES = {"fast_head": "the fast head (logistic regression on the frozen encoder)", "lora": "the LoRA adapter",
               "full": "the fully fine-tuned model"}

_SCORES = ("accuracy", "macro_f1", "entity_f1", "precision", "recall")


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class Scores:
    """One model's headline figures on one split; None where the task kind does not have the figure (classification
    has accuracy and macro-F1, spans entity F1 / precision / recall and also a word accuracy and type macro-F1)."""

    accuracy: float | None = None
    macro_f1: float | None = None
    entity_f1: float | None = None
    precision: float | None = None
    recall: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Scores:
        data = data or {}
        return cls(**{name: _number(data.get(name)) for name in _SCORES})


@dataclass(frozen=True)
class RunMetrics:
    """A run's metrics.json as the CLI and the pages read it (the one place that knows the file's keys).

    task: "spans" or "classification". split: where `summary` was measured (test if there was one). selected: the
    model the run kept ("fast_head", "lora", "full"). summary: its scores there. validation: each model's
    validation scores, by key (a spans run has no fast head). report: the report split's full report (per-class
    table, confusion). curve: loss and eval points. raw: the file itself, for what is shown as is."""

    task: str
    split: str
    selected: str
    summary: Scores
    validation: dict[str, Scores]
    report: dict[str, Any]
    curve: dict[str, list[dict[str, Any]]]
    train_time_s: float | None
    train_examples_per_s: float | None
    adapter_size_bytes: int | None
    raw: dict[str, Any]
    generation: GenerationMetrics | None = None  # a generation run's figures (base vs fine-tuned)

    @property
    def is_spans(self) -> bool:
        return self.task == "spans"

    @property
    def is_generation(self) -> bool:
        return self.task == "generation"

    @property
    def method(self) -> str:
        """The fine-tuning method's key (lora or full), whichever model was kept."""
        from training.config import METHODS

        return next((k for k in METHODS if k in self.validation), METHODS[0])

    @classmethod
    def from_json(cls, metrics: dict[str, Any]) -> RunMetrics:
        """From metrics.json, or from a run's summary alone (RunInfo.metrics)."""
        from training.config import METHODS

        summary = metrics.get("summary", metrics)
        if metrics.get("task") == "generation" or summary.get("task") == "generation":
            return cls._generation(metrics, summary)
        spans = metrics.get("task") == "spans" or "entity_f1" in summary
        split = str(summary.get("split") or "test")
        validation = {key: Scores.from_dict(metrics[key].get("validation")) for key in ("fast_head", *METHODS)
                      if isinstance(metrics.get(key), dict) and metrics[key].get("validation")}
        size = metrics.get("adapter_size_bytes")
        return cls(task="spans" if spans else "classification", split=split,
                   selected=str(metrics.get("selected") or summary.get("selected") or ""),
                   summary=Scores.from_dict(summary), validation=validation, report=metrics.get(split) or {},
                   curve=metrics.get("curve") or {"loss": [], "eval": []},
                   train_time_s=_number(metrics.get("train_time_s")),
                   train_examples_per_s=_number(metrics.get("train_examples_per_s")),
                   adapter_size_bytes=None if size is None else int(size), raw=metrics)

    @classmethod
    def _generation(cls, metrics: dict[str, Any], summary: dict[str, Any]) -> RunMetrics:
        gen = GenerationMetrics.from_json(metrics)
        size = metrics.get("adapter_size_bytes")
        return cls(task="generation", split=gen.eval_split, selected="lora", summary=Scores(), validation={},
                   report={}, curve=gen.curve, train_time_s=gen.train_time_s,
                   train_examples_per_s=_number(metrics.get("train_examples_per_s")),
                   adapter_size_bytes=None if size is None else int(size), raw=metrics, generation=gen)


_GENERATION_SCORES = ("rouge_l", "chrf", "embedding_similarity", "perplexity", "mean_logprob", "response_words",
                      "truncated", "generation_tokens_per_s")


@dataclass(frozen=True)
class GenerationScores:
    """One model's answers against the references (training/gen_eval.py): rouge_l [0, 1], chrf [0, 100],
    embedding_similarity [-1, 1], perplexity of the references (lower = better), mean_logprob of its own answers,
    response_words, truncated (share cut at max_new_tokens), generation_tokens_per_s. None = not measured."""

    rouge_l: float | None = None
    chrf: float | None = None
    embedding_similarity: float | None = None
    perplexity: float | None = None
    mean_logprob: float | None = None
    response_words: float | None = None
    truncated: float | None = None
    generation_tokens_per_s: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GenerationScores:
        data = data or {}
        return cls(**{name: _number(data.get(name)) for name in _GENERATION_SCORES})


@dataclass(frozen=True)
class GroupScores:
    """Both models' figures on the eval prompts of one group (e.g. an intent); n prompts."""

    n: int
    base: GenerationScores
    fine_tuned: GenerationScores


@dataclass(frozen=True)
class GenerationMetrics:
    """A generation run's metrics.json (training/sft.py), typed: the fine-tuned model against its base on the same
    n_eval_prompts prompts of eval_split, per group where the data has groups, and the run's throughput.
    From the run's summary alone (RunInfo.metrics) only the fine-tuned headline figures and the base ROUGE-L are
    there; the rest is None / empty."""

    base: GenerationScores
    fine_tuned: GenerationScores
    per_group: dict[str, GroupScores]
    n_eval_prompts: int
    eval_split: str
    reference_words: float | None
    train_tokens_per_s: float | None
    generation_tokens_per_s: float | None
    validation_loss: float | None
    train_time_s: float | None
    curve: dict[str, list[dict[str, Any]]]

    @property
    def evaluated(self) -> bool:
        return self.n_eval_prompts > 0 and self.fine_tuned.rouge_l is not None

    @classmethod
    def from_json(cls, metrics: dict[str, Any]) -> GenerationMetrics:
        summary = metrics.get("summary", metrics)
        full = "fine_tuned" in metrics
        tuned = metrics["fine_tuned"] if full else summary
        base = metrics.get("base") if full else {"rouge_l": summary.get("base_rouge_l")}
        groups = {str(g): GroupScores(n=int(v.get("n", 0)), base=GenerationScores.from_dict(v.get("base")),
                                      fine_tuned=GenerationScores.from_dict(v.get("fine_tuned")))
                  for g, v in (metrics.get("per_group") or {}).items()}
        loss = metrics.get("best_validation_loss", summary.get("validation_loss"))
        n = metrics.get("n_eval_prompts", summary.get("n_eval_prompts", 0))
        return cls(base=GenerationScores.from_dict(base), fine_tuned=GenerationScores.from_dict(tuned),
                   per_group=groups, n_eval_prompts=int(n or 0),
                   eval_split=str(metrics.get("eval_split") or summary.get("split") or ""),
                   reference_words=_number(metrics.get("reference_words")),
                   train_tokens_per_s=_number(metrics.get("train_tokens_per_s")),
                   generation_tokens_per_s=_number(metrics.get("generation_tokens_per_s")),
                   validation_loss=_number(loss), train_time_s=_number(metrics.get("train_time_s")),
                   curve=metrics.get("curve") or {"loss": [], "eval": []})


def generation_scores(scores: GenerationScores) -> str:
    """One model's answer figures in words: "ROUGE-L 0.412, chrF 38.1, embedding similarity 0.803"."""
    parts = [f"ROUGE-L {scores.rouge_l:.3f}" if scores.rouge_l is not None else "",
             f"chrF {scores.chrf:.1f}" if scores.chrf is not None else "",
             f"embedding similarity {scores.embedding_similarity:.3f}"
             if scores.embedding_similarity is not None else ""]
    return ", ".join(p for p in parts if p) or "not evaluated"


def _generation_line(g: GenerationMetrics) -> str:
    if not g.evaluated:
        return "The model is the LoRA adapter (not evaluated: no test or validation prompts)."
    line = (f"The model is the LoRA adapter; on {g.n_eval_prompts} {g.eval_split} prompts it scores "
            f"{generation_scores(g.fine_tuned)}")
    if g.base.rouge_l is not None:
        line += f", against {generation_scores(g.base)} for the base model"
    return line + "."


def _metrics(metrics: RunMetrics | dict[str, Any]) -> RunMetrics:
    return metrics if isinstance(metrics, RunMetrics) else RunMetrics.from_json(metrics)


def validation_macro_f1(metrics: RunMetrics | dict[str, Any]) -> tuple[str, float | None, float | None]:
    """(the fine-tuning method's key, the fast head's and the fine-tuned model's validation macro-F1, None where
    there is none) of a run."""
    m = _metrics(metrics)
    fast = m.validation.get("fast_head", Scores()).macro_f1
    return m.method, fast, m.validation.get(m.method, Scores()).macro_f1


def is_spans(metrics: RunMetrics | dict[str, Any]) -> bool:
    """Whether a run (metrics.json, or its summary: RunInfo.metrics) is a spans run's: entity-level figures."""
    return _metrics(metrics).is_spans


def entity_scores(scores: Scores | dict[str, Any]) -> str:
    """A spans run's scores in words: "entity F1 0.392 (precision 0.410, recall 0.375)"."""
    s = scores if isinstance(scores, Scores) else Scores.from_dict(scores)
    nan = float("nan")
    return (f"entity F1 {s.entity_f1 if s.entity_f1 is not None else nan:.3f} "
            f"(precision {s.precision if s.precision is not None else nan:.3f}, "
            f"recall {s.recall if s.recall is not None else nan:.3f})")


def class_scores(scores: Scores) -> str:
    """A classification run's scores in words: "accuracy 0.912, macro-F1 0.905"."""
    nan = float("nan")
    return (f"accuracy {scores.accuracy if scores.accuracy is not None else nan:.3f}, "
            f"macro-F1 {scores.macro_f1 if scores.macro_f1 is not None else nan:.3f}")


def model_choice_line(metrics: RunMetrics | dict[str, Any]) -> str:
    """Which model a run kept and why: the fine-tuned model is kept only if it beats the fast head's validation
    macro-F1 (training/train.py), so a person should see both figures, not only the winner. A spans run has no fast
    head (training/tokens.py): the line names the fine-tuned model and its validation entity F1. A generation run
    (training/sft.py) names its figures and its base model's on the same prompts."""
    m = _metrics(metrics)
    if m.generation is not None:
        return _generation_line(m.generation)
    if m.is_spans:
        return _spans_choice_line(m)
    if not m.selected:
        return ""
    tuned_name, fast, tuned = validation_macro_f1(m)
    kept = MODEL_NAMES.get(m.selected, m.selected)
    if fast is None or tuned is None:
        return f"Kept {kept} (no validation split to compare the two models on)."
    other = MODEL_NAMES[tuned_name] if m.selected == "fast_head" else MODEL_NAMES["fast_head"]
    kept_f1, other_f1 = (fast, tuned) if m.selected == "fast_head" else (tuned, fast)
    return (f"Kept {kept}: validation macro-F1 {kept_f1:.3f}, against {other_f1:.3f} for {other}"
            + (" (the fine-tuning did not beat the fast head it started from; more labels or epochs may help)."
               if m.selected == "fast_head" else "."))


def _spans_choice_line(m: RunMetrics) -> str:
    method = m.selected or (m.method if m.validation else "")
    if not method:
        return ""
    model = MODEL_NAMES.get(method, method)
    validation = m.validation.get(method)
    if validation is None or validation.entity_f1 is None:
        return (f"The model is {model} (token classification; there is no fast head to compare it with, and no "
                "validation split to score it on).")
    return (f"The model is {model} (token classification; there is no fast head to compare it with): validation "
            f"{entity_scores(validation)}.")
