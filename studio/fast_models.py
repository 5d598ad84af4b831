"""The fast learners as models: fitted in seconds on a snapshot's curated labels, no training job.

Before the first training run, active learning scores the pool with them and the ML backend pre-annotates with
them (model_version `fast-<snapshot id>`). One per task kind that has one: single-label classification uses
studio/learner.py (self-trained logistic regression on sentence embeddings), named entities the fast token learner
of studio/span_learner.py (logistic regression over word vectors). Other kinds are refused, or given None when
the caller can do without (`required=False`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from studio.errors import EmptyDataError, UnsupportedTaskKind
from studio.types import ProgressFn

#: model_version prefix of the fast learners' predictions: fast-<snapshot id>.
FAST_PREFIX = "fast-"

Embed = Callable[..., Any]


@dataclass
class FastModel:
    """The classification fast learner as a predictor: texts in, (N, K) probabilities out, like a run's."""

    learner: Any
    class_names: list[str]
    model_version: str
    embed: Embed
    task: str = "single_label"

    def predict_proba(self, texts: list[str], *, progress: ProgressFn | None = None) -> np.ndarray:
        return self.learner.predict_proba(self.embed(texts))


@dataclass
class FastSpanModel:
    """The fast token learner as a predictor: texts in, per text (W, T) tag probabilities out, like a SpanPredictor."""

    learner: Any
    class_names: list[str]
    model_version: str
    embed_words: Embed
    task: str = "spans"

    def predict_word_probs(self, texts: list[str], *, progress: ProgressFn | None = None) -> list[np.ndarray]:
        return self.learner.predict_word_probs(self.embed_words(texts, progress=progress), texts=texts)


def fast_scores(snapshot, curated: pd.DataFrame, pool_texts: list[str], *, embed: Embed, embed_words: Embed,
                config, required: bool, progress: ProgressFn | None = None) -> tuple[Any, Any, str] | None:
    """(the fast learner's output on the pool (TaskKind.predict's shape), pool sentence embeddings or None,
    model_version), fitted on `curated` (the snapshot's curated view); None (or an error when `required`) if there
    is nothing to learn from yet."""
    kind = snapshot.schema.kind
    version = f"{FAST_PREFIX}{snapshot.id}"
    if kind.name == "spans":
        learner = _fit_spans(snapshot, curated, embed_words, required=required, progress=progress)
        if learner is None:
            return None
        return learner.predict_word_probs(embed_words(pool_texts, progress=progress), texts=pool_texts), None, version
    training = _classes(snapshot, curated, required=required)
    if training is None:
        return None
    from studio.learner import FastLearner

    texts, y = training
    x = embed(texts + pool_texts, progress=progress)
    x_labeled, x_pool = x[:len(y)], x[len(y):]
    learner = FastLearner(x, len(kind.classes), config=config).fit(x_labeled, y, x_pool)
    return learner.predict_proba(x_pool), x_pool, version


def fast_model(snapshot, curated: pd.DataFrame, *, embed: Embed, embed_words: Embed,
               config) -> FastModel | FastSpanModel | None:
    """The fast learner fitted on the curated labels alone (no pool), for the ML backend; None if there is nothing
    to learn from yet (or the kind has no fast learner)."""
    kind = snapshot.schema.kind
    version = f"{FAST_PREFIX}{snapshot.id}"
    if kind.name == "spans":
        learner = _fit_spans(snapshot, curated, embed_words, required=False)
        return None if learner is None else FastSpanModel(learner, list(kind.classes), version, embed_words)
    training = _classes(snapshot, curated, required=False)
    if training is None:
        return None
    from studio.learner import FastLearner

    texts, y = training
    x = embed(texts)
    learner = FastLearner(x, len(kind.classes), config=config).fit(x, y)
    return FastModel(learner, list(kind.classes), version, embed)


def _classes(snapshot, curated: pd.DataFrame, *, required: bool) -> tuple[list[str], np.ndarray] | None:
    """(texts, class indices) of single-label curated labels, or None (raises when `required`) for another kind
    or fewer than two labeled classes."""
    kind = snapshot.schema.kind
    if kind.name != "single_label":
        if required:
            raise UnsupportedTaskKind(f"The fast learner handles single-label and named-entity projects; this one is "
                                      f"{kind.description}.",
                                      hint="train a model on the Train page and score with scorer='run'")
        return None
    y = curated["label"].map({c: i for i, c in enumerate(kind.classes)}).to_numpy(dtype=np.int64)
    if len(np.unique(y)) < 2:
        if required:
            raise EmptyDataError(f"The fast learner needs labels of at least two classes; snapshot "
                                 f"{snapshot.id} has {len(np.unique(y))}.",
                                 hint="label a few tasks of two or more classes, sync, and score again")
        return None
    return curated["text"].tolist(), y


def _fit_spans(snapshot, curated: pd.DataFrame, embed_words: Embed, *, required: bool,
               progress: ProgressFn | None = None):
    """The fast token learner on the curated spans, or None (raises when `required`) before any entity is labeled."""
    from studio.span_learner import TokenLearner
    from studio.spans import bio_tag_names, spans_to_tags, word_offsets

    types = list(snapshot.schema.kind.classes)
    texts = curated["text"].tolist()
    spans = [list(s) for s in curated["spans"]]
    if not any(spans):
        if required:
            raise EmptyDataError(f"The fast token learner needs labeled entities; snapshot {snapshot.id} has none.",
                                 hint="label a few texts with their entities, sync, and score again")
        return None
    tags = [spans_to_tags(word_offsets(t), s, types) for t, s in zip(texts, spans)]
    return TokenLearner(len(bio_tag_names(types))).fit(embed_words(texts, progress=progress), tags, texts=texts)
