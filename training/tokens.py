"""Token classification, the model side of the "spans" task kind: one BIO tag per word (studio/spans.py).

The encoder is `AutoModelForTokenClassification` (encoder + dropout + linear classifier over the tags), adapted
with LoRA (peft, TaskType.TOKEN_CLS, the classifier in modules_to_save) or, for method="full", every weight.
A word's tag is learned and predicted on its first sub-token; the others carry -100, which the loss ignores.

Long texts: word sequences whose sub-tokens do not fit `max_length` are cut at word boundaries into pieces
that do (`word_pieces`), in training and in prediction alike, so every word is seen and predicted; a piece
boundary only costs the context across it. Words the tokenizer turns into no sub-token at all (e.g. a lone
U+FE0F) get the uniform distribution 1/T, i.e. tag "O" with the lowest possible confidence.

Metrics are entity-level (`studio.span_agreement.span_metrics` on the word spans `tags_to_spans` rebuilds from the tags,
so an I- tag that does not continue its entity starts one: seqeval's default mode), overall and per type, plus
token accuracy and a type confusion table.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from studio.errors import ConfigError, TrainingError
from studio.spans import tags_to_spans
from studio.types import ProgressFn
from training.config import TrainConfig
from training.data import CuratedData
from training.train import ShouldStop, TrainingCancelled, _curve, _make_callbacks, _training_args

log = logging.getLogger(__name__)

IGNORE = -100  # the label id torch's cross-entropy (and DataCollatorForTokenClassification) skips
NONE = "none"  # the type confusion table's row/column for a missed or spurious entity
EVAL_METRICS = ("entity_f1", "precision", "recall", "macro_f1", "accuracy")


# -- words <-> sub-tokens ---------------------------------------------------------------------------------------
def align_labels(word_ids: Sequence[int | None], word_tags: Sequence[int]) -> list[int]:
    """Sub-token labels from word tags: the first sub-token of word w gets word_tags[w]; the word's other
    sub-tokens and special tokens (word id None) get IGNORE. word_ids: a fast tokenizer's `word_ids()`."""
    labels, previous = [], None
    for w in word_ids:
        labels.append(IGNORE if w is None or w == previous else int(word_tags[w]))
        previous = w
    return labels


def word_pieces(counts: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """[(start, end), ...] word ranges covering all words, each holding at most `budget` sub-tokens.

    counts: (W,) sub-tokens per word. A word longer than the budget alone makes a piece (it is truncated, but
    its first sub-token, the one that carries its tag, is kept). No words -> no pieces.
    """
    pieces, start, used = [], 0, 0
    for w, c in enumerate(counts):
        if w > start and used + c > budget:
            pieces.append((start, w))
            start, used = w, 0
        used += c
    if len(counts):
        pieces.append((start, len(counts)))
    return pieces


def split_long(tokenizer: Any, words: Sequence[Sequence[str]], max_length: int) -> list[tuple[int, int, int]]:
    """(row, start, end) pieces of every row's words that fit max_length sub-tokens with the special tokens."""
    budget = max(1, max_length - tokenizer.num_special_tokens_to_add(pair=False))
    rows = [list(w) for w in words]
    enc = tokenizer([r for r in rows if r], is_split_into_words=True, add_special_tokens=False) if any(rows) else None
    out, j = [], 0
    for i, row in enumerate(rows):
        if not row:
            continue
        counts = np.bincount([w for w in enc.word_ids(j) if w is not None], minlength=len(row))
        out += [(i, a, b) for a, b in word_pieces(counts.tolist(), budget)]
        j += 1
    return out


def token_dataset(tokenizer: Any, words: Sequence[Sequence[str]], tags: Sequence[Sequence[int]],
                  max_length: int) -> Any:
    """A datasets.Dataset of input_ids/attention_mask(/token_type_ids)/labels, one row per piece of each text."""
    from datasets import Dataset

    pieces = split_long(tokenizer, words, max_length)
    enc = tokenizer([list(words[i][a:b]) for i, a, b in pieces], is_split_into_words=True, truncation=True,
                    max_length=max_length)
    columns = dict(enc)
    columns["labels"] = [align_labels(enc.word_ids(j), tags[i][a:b]) for j, (i, a, b) in enumerate(pieces)]
    return Dataset.from_dict(columns)


# -- the model ----------------------------------------------------------------------------------------------------
def build_token_classifier(model_path: str, tag_names: Sequence[str]) -> Any:
    """The base encoder with a fresh (T, D) tag classifier on every token; id2label = tag_names."""
    from transformers import AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the load report lists the new classifier and the unused pooler: expected
    try:
        return AutoModelForTokenClassification.from_pretrained(
            model_path, num_labels=len(tag_names), id2label=dict(enumerate(tag_names)),
            label2id={t: i for i, t in enumerate(tag_names)})
    finally:
        hf_logging.set_verbosity(before)


def classifier_name(model: Any) -> str:
    """The name of the model's tag classifier module ("classifier" for BERT-style models)."""
    for name in ("classifier", "score"):
        if hasattr(model, name):
            return name
    raise TrainingError(f"{type(model).__name__} has no 'classifier' or 'score' head to train.",
                        hint="use a BERT-style encoder as [train] base_model")


def add_token_lora(model: Any, *, r: int, alpha: int, dropout: float, target_modules: Sequence[str],
                   layers: int = 0) -> Any:
    """Wrap a token classifier with LoRA on `target_modules` (top `layers` blocks; 0 = all); the classifier
    trains fully and is saved with the adapter. Same choices and messages as training/lora.py's add_lora."""
    from peft import LoraConfig, TaskType, get_peft_model
    from torch import nn

    from training.lora import linear_module_names, transformer_layers, transformer_stack

    encoder = model.base_model
    available = linear_module_names(encoder)
    missing = [m for m in target_modules if m not in available]
    if missing:
        raise ConfigError(
            f"[train] target_modules = {list(target_modules)!r}: {missing} match no Linear layer of this encoder.",
            hint=f"pick from the encoder's Linear layers: {', '.join(available)}")
    extra: dict[str, Any] = {}
    if layers:
        pattern, count = transformer_layers(encoder)
        if not 0 < layers <= count:
            raise ConfigError(f"[train] lora_layers = {layers!r}: this encoder has {count} transformer layers.",
                              hint=f"set lora_layers to 0 (all layers) or an integer in [1, {count}]")
        extra = {"layers_to_transform": list(range(count - layers, count)), "layers_pattern": pattern}
        # Frozen blocks (and the embeddings) get no dropout: it would only add noise below the trained blocks,
        # and on a 2-core CPU it is a sizeable share of a step's time (bench/train.py). MeanPoolClassifier.train
        # does this by eval mode; Trainer calls model.train() every step, so here the dropout rate itself is 0.
        trained = {id(m) for block in list(transformer_stack(encoder))[count - layers:] for m in block.modules()}
        for m in encoder.modules():
            if isinstance(m, nn.Dropout) and id(m) not in trained:
                m.p = 0.0
    config = LoraConfig(task_type=TaskType.TOKEN_CLS, r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=list(target_modules), modules_to_save=[classifier_name(model)], **extra)
    return get_peft_model(model, config)


# -- metrics ------------------------------------------------------------------------------------------------------
def _word_spans(tags: Sequence[str]) -> list[dict[str, Any]]:
    # Word-index spans: offsets (w, w + 1), so a span's start/end are its first word and one past its last.
    return tags_to_spans("", [(w, w + 1) for w in range(len(tags))], tags)


def type_confusion(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], *,
                   types: Sequence[str]) -> dict[str, Any]:
    """Gold type (rows) x predicted type (columns) over entities matched by word overlap, largest overlap first,
    one to one; a gold entity left unmatched counts in column "none", a spurious prediction in row "none".

    gold, pred: per text, (W,) tag names. Returns {"labels": [*types, "none"], "matrix": (K+1, K+1) counts}.
    """
    labels = [*types, NONE]
    index = {t: i for i, t in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for g_tags, p_tags in zip(gold, pred):
        g, p = _word_spans(g_tags), _word_spans(p_tags)
        pairs = sorted(((min(a["end"], b["end"]) - max(a["start"], b["start"]), i, j)
                        for i, a in enumerate(g) for j, b in enumerate(p)), reverse=True)
        used_g, used_p = set(), set()
        for overlap, i, j in pairs:
            if overlap > 0 and i not in used_g and j not in used_p:
                used_g.add(i)
                used_p.add(j)
                matrix[index.get(g[i]["label"], -1), index.get(p[j]["label"], -1)] += 1
        for i in set(range(len(g))) - used_g:
            matrix[index.get(g[i]["label"], -1), -1] += 1
        for j in set(range(len(p))) - used_p:
            matrix[-1, index.get(p[j]["label"], -1)] += 1
    return {"labels": labels, "matrix": matrix.tolist()}


def entity_summary(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], *,
                   types: Sequence[str]) -> dict[str, float]:
    """entity_f1 / precision / recall (exact entities, micro over types), macro_f1 (mean entity F1 over the types
    present in gold or predictions), accuracy (share of words whose tag is right). Higher = better for all.

    gold, pred: per text, (W,) tag names ("O", "B-person", ...), the same W for both."""
    return _summary(gold, pred, types)[0]


def _summary(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
             types: Sequence[str]) -> tuple[dict[str, float], dict[str, Any]]:
    from studio.span_agreement import span_metrics

    g_spans, p_spans = [_word_spans(g) for g in gold], [_word_spans(p) for p in pred]
    scores = span_metrics(g_spans, p_spans, types)
    predicted = {s["label"] for row in p_spans for s in row}
    present = [t for t in types if scores["per_type"][t]["support"] or t in predicted]
    words = sum(len(g) for g in gold)
    overall = scores["overall"]
    summary = {
        "entity_f1": float(overall["f1"]), "precision": float(overall["precision"]),
        "recall": float(overall["recall"]),
        "macro_f1": float(np.mean([scores["per_type"][t]["f1"] for t in present])) if present else 0.0,
        "accuracy": float(sum(a == b for g, p in zip(gold, pred) for a, b in zip(g, p)) / words) if words else 0.0,
    }
    return summary, scores


def entity_report(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], *,
                  types: Sequence[str]) -> dict[str, Any]:
    """entity_summary + per type {precision, recall, f1, support (gold entities)} under "per_class" (the key the
    Runs page reads) + "partial" (precision/recall/F1 counting overlapping same-type entities) +
    "type_confusion" + n (texts) and words."""
    report: dict[str, Any]
    report, scores = _summary(gold, pred, types)
    report["n"], report["words"] = len(gold), int(sum(len(g) for g in gold))
    report["per_class"] = {t: {k: float(v) if k != "support" else int(v) for k, v in scores["per_type"][t].items()}
                           for t in types}
    report["partial"] = {k: float(v) if k != "support" else int(v) for k, v in scores["partial"].items()}
    report["type_confusion"] = type_confusion(gold, pred, types=types)
    return report


def trainer_token_metrics(tag_names: Sequence[str], types: Sequence[str]) -> Callable[[Any], dict[str, float]]:
    """A `compute_metrics` for Trainer: (N, L) argmax ids (see `argmax_logits`) + (N, L) labels -> entity_summary
    over each row's labelled positions (the first sub-token of every word)."""

    def compute(eval_pred: Any) -> dict[str, float]:
        preds, labels = np.asarray(eval_pred.predictions), np.asarray(eval_pred.label_ids)
        gold, pred = [], []
        for p_row, l_row in zip(preds, labels):
            keep = l_row != IGNORE
            gold.append([tag_names[i] for i in l_row[keep]])
            pred.append([tag_names[i] for i in p_row[keep]])
        return entity_summary(gold, pred, types=types)

    return compute


def argmax_logits(logits: Any, labels: Any) -> Any:
    """preprocess_logits_for_metrics: keep (N, L) tag ids, not (N, L, T) logits, across the evaluation."""
    return (logits[0] if isinstance(logits, tuple) else logits).argmax(dim=-1)


# -- training -----------------------------------------------------------------------------------------------------
def train_token_classifier(work: Path, curated: CuratedData, cfg: TrainConfig, model_path: str, *,
                           progress: ProgressFn | None, should_stop: ShouldStop | None, callbacks: Sequence[Any],
                           run_id: str) -> dict[str, Any]:
    """Fine-tune a token classifier on a spans data set; returns what write_run needs (model, tokenizer,
    metrics) and report_probs (per text of the report split, its (W, T) word probabilities).

    The best checkpoint (and early stopping) follow validation entity F1. There is no fast head for spans:
    cfg.head_init and head_c do not apply, and the fine-tuned model is always the one kept.
    """
    import torch
    from transformers import (
        AutoTokenizer,
        DataCollatorForTokenClassification,
        EarlyStoppingCallback,
        PrinterCallback,
        Trainer,
    )

    from training.artefacts import predictions_frame
    from training.lora import count_parameters
    from training.token_predict import word_probs

    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    tags, types = list(curated.tag_names or []), list(curated.class_names)
    has_val, has_test = len(curated.validation) > 0, len(curated.test) > 0
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if not tokenizer.is_fast:
        raise TrainingError(f"The tokenizer of {model_path} is not a fast tokenizer; token classification needs "
                            "its word_ids() to align tags with sub-tokens.", hint="use a model with tokenizer.json")
    model = build_token_classifier(model_path, tags)
    if cfg.method == "lora":
        model = add_token_lora(model, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                               target_modules=cfg.target_modules, layers=cfg.lora_layers)
    trainable, total = count_parameters(model)

    def dataset(split: str) -> Any:
        return token_dataset(tokenizer, curated.tokens(split), curated.ner_tags(split), cfg.max_length)

    train_ds = dataset("train")
    val_ds = dataset("validation") if has_val else None
    all_callbacks = [_make_callbacks(progress, should_stop), *callbacks]
    if has_val and cfg.early_stopping_patience > 0:
        all_callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    trainer = Trainer(model=model, args=_training_args(cfg, work / "checkpoints", has_validation=has_val,
                                                       metric="entity_f1"),
                      train_dataset=train_ds, eval_dataset=val_ds,
                      data_collator=DataCollatorForTokenClassification(tokenizer),
                      compute_metrics=trainer_token_metrics(tags, types),
                      preprocess_logits_for_metrics=argmax_logits, callbacks=all_callbacks)
    trainer.remove_callback(PrinterCallback)
    logging.getLogger("transformers.trainer").setLevel(logging.ERROR)
    log.info("run %s: token classification (%s), %d of %d parameters trainable", run_id, cfg.method, trainable, total)
    t0 = time.perf_counter()
    output = trainer.train()
    train_time = time.perf_counter() - t0
    if should_stop is not None and should_stop():
        raise TrainingCancelled(f"Run {run_id} was cancelled at step {trainer.state.global_step}.")

    # Scored the way the reloaded SpanPredictor predicts (every word, long texts in pieces), not on the
    # Trainer's evaluation batches, so the recorded figures are the ones a user of the run gets.
    predictions = []  # per task, gold and predicted tags (training/compare.py)

    def evaluate(split: str) -> tuple[dict[str, Any], list[np.ndarray]]:
        probs = word_probs(trainer.model, tokenizer, curated.tokens(split), max_length=cfg.max_length,
                           batch_size=cfg.eval_batch_size)
        gold = [[tags[t] for t in row] for row in curated.ner_tags(split)]
        pred = [[tags[t] for t in p.argmax(axis=1)] if len(p) else [] for p in probs]
        if "task_id" in curated.split(split).columns:
            predictions.append(predictions_frame(split, curated.split(split)["task_id"], gold, pred))
        return entity_report(gold, pred, types=types), probs

    report_split = "test" if has_test else ("validation" if has_val else "train")
    tuned: dict[str, Any] = {}
    report, report_probs = evaluate(report_split)
    for split in ("validation", "test"):
        if split == report_split:
            tuned[split] = {k: report[k] for k in EVAL_METRICS}
        elif split == "validation" and has_val:
            tuned[split] = {k: v for k, v in evaluate(split)[0].items() if k in EVAL_METRICS}
    metrics = {
        "task": "spans",
        "summary": {**{k: report[k] for k in EVAL_METRICS}, "split": report_split, "selected": cfg.method},
        report_split: report,
        cfg.method: tuned,
        "curve": _curve(trainer.state.log_history, metrics=EVAL_METRICS),
        "best_checkpoint_metric": trainer.state.best_metric,
        "global_step": trainer.state.global_step,
        "world_size": trainer.args.world_size,  # processes that trained together (training/distributed.py)
        "epochs_done": trainer.state.epoch,
        "train_time_s": round(train_time, 2),
        "total_time_s": round(time.perf_counter() - started, 2),
        "train_examples_per_s": round(output.metrics.get("train_samples_per_second", 0.0), 2),
        "trainable_parameters": trainable,
        "total_parameters": total,
    }
    return {"model": trainer.model, "tokenizer": tokenizer, "metrics": metrics, "report_probs": report_probs,
            "predictions": predictions}
