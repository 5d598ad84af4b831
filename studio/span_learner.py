"""The fast token learner: BIO tags from frozen-encoder word vectors, in seconds rather than a fine-tuning run.

Quality checks need out-of-sample word probabilities and active learning needs a fresh model after each batch;
both call this learner. It is a multinomial logistic regression over the BIO tags (studio.learner's
SoftmaxRegression: every tag kept, also one a fold has not seen) on per-word features:

- the word's vector and its left and right neighbours' vectors (zeros past the edges), each reduced to
  `components` principal components fitted on the vectors themselves (no labels, so nothing leaks into the
  folds). The vectors are contextual already; the neighbours add where an entity starts and stops;
- shape features read from the text: capitalised, all capitals, has a digit, punctuation, is "@" or "#",
  follows "@"/"#" with no space (a handle or hashtag), joined to the previous word, first word, lower case.

Features are standardised with the statistics of the vectors the featuriser was fitted on. With 64 components
the regression sees 201 features; on WNUT-17 train (3,394 texts, 81k words, 2 cores at load ~3) one fit takes
~4 s and the 5-fold probabilities 19-29 s (bench/ner_quality.py). The full 384-wide vectors (1,161 features)
gave +0.01 test entity F1 (0.284 vs 0.272) for ~4x the time; the log-loss after 30 and 100 L-BFGS steps agreed
to four digits, hence max_iter 50.

Direction: word vectors (studio.token_embeddings.encode_words) and tag ids in, (W, T) probabilities out. No I/O.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from studio.config import ConfigSection, require
from studio.errors import ConfigError, DataError, EmptyDataError, did_you_mean
from studio.learner import SoftmaxRegression
from studio.spans import word_offsets
from studio.types import ProgressFn

#: Number of shape features `shape_features` returns per word.
N_SHAPE = 9


@dataclass
class TokenLearnerConfig(ConfigSection):
    """Settings of the fast token learner (bench/ner_quality.py measured them on WNUT-17)."""

    SECTION = "span_learner"
    c: float = 0.02  # inverse L2 strength on standardised features (summed, not mean, cross-entropy)
    components: int = 64  # principal components kept of each vector (word, left, right); 0 = the full vectors
    max_iter: int = 50  # L-BFGS iterations: the log-loss of 30 and 100 agree to 4 digits on WNUT-17

    def __post_init__(self) -> None:
        s = self.SECTION
        require(self.c > 0, s, "c", self.c, "a positive number, e.g. 0.02")
        require(self.components >= 0, s, "components", self.components, "0 (no reduction) or e.g. 64")
        require(self.max_iter > 0, s, "max_iter", self.max_iter, "a positive number of iterations, e.g. 100")


def shape_features(text: str) -> np.ndarray:
    """(W, N_SHAPE) float32 0/1 features of the words of `text` (word_offsets), in the order of the docstring."""
    offsets = word_offsets(text)
    rows = np.zeros((len(offsets), N_SHAPE), dtype=np.float32)
    for k, (a, b) in enumerate(offsets):
        w = text[a:b]
        joined = k > 0 and offsets[k - 1][1] == a
        prev = text[offsets[k - 1][0]:offsets[k - 1][1]] if k else ""
        rows[k] = [w[:1].isupper(), len(w) > 1 and w.isupper(), any(c.isdigit() for c in w),
                   not (w[0].isalnum() or w[0] == "_"), w in ("@", "#"), joined and prev in ("@", "#"),
                   joined, k == 0, w.islower()]
    return rows


def _check_vecs(word_vecs: Sequence[np.ndarray], texts: Sequence[str] | None) -> list[np.ndarray]:
    vecs = [np.asarray(v, dtype=np.float32) for v in word_vecs]
    dims = {v.shape[1] for v in vecs if v.ndim == 2}
    if any(v.ndim != 2 for v in vecs) or len(dims) > 1:
        raise DataError(f"word_vecs must be (W_i, D) arrays of one width D; got shapes "
                        f"{sorted({v.shape for v in vecs})[:4]}.",
                        hint="pass studio.token_embeddings.encode_words(texts) unchanged")
    if texts is not None:
        if len(texts) != len(vecs):
            raise DataError(f"{len(vecs)} word-vector arrays but {len(texts)} texts; expected one per text.",
                            hint="pass the texts the vectors were encoded from, in the same order")
        for i, (t, v) in enumerate(zip(texts, vecs)):
            if len(word_offsets(t)) != len(v):
                raise DataError(f"text {i} has {len(word_offsets(t))} words but {len(v)} word vectors.",
                                hint="encode the same texts with studio.token_embeddings.encode_words")
    return vecs


class WordFeaturizer:
    """Word vectors (+ texts) -> standardised per-word feature rows; `fit` once on every vector available."""

    def __init__(self, *, components: int = 64, seed: int = 0) -> None:
        self.components, self.seed = components, seed
        self.basis: np.ndarray | None = None  # (D, k) principal axes, or None for the full vectors
        self.center: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.with_shape = False

    def fit(self, word_vecs: Sequence[np.ndarray], texts: Sequence[str] | None = None) -> WordFeaturizer:
        stacked = np.concatenate([v for v in word_vecs if len(v)]) if any(len(v) for v in word_vecs) else None
        if stacked is None:
            raise EmptyDataError("no words to fit the token learner's features on (every text is empty).",
                                 hint="label or import texts with words in them")
        self.center = stacked.mean(axis=0)
        k = min(self.components, stacked.shape[1], len(stacked))
        if self.components and k < stacked.shape[1]:
            rng = np.random.default_rng(self.seed)
            sample = stacked[rng.choice(len(stacked), min(len(stacked), 20000), replace=False)] - self.center
            # The top-k right singular vectors of a 20k-row sample are the principal axes within noise.
            _, _, vt = np.linalg.svd(sample.astype(np.float64), full_matrices=False)
            self.basis = vt[:k].T.astype(np.float32)
        self.with_shape = texts is not None
        raw = np.concatenate(self._raw(word_vecs, texts))
        self.mean, self.scale = raw.mean(axis=0), np.maximum(raw.std(axis=0), 1e-6)
        return self

    def _raw(self, word_vecs: Sequence[np.ndarray], texts: Sequence[str] | None) -> list[np.ndarray]:
        out = []
        for i, v in enumerate(word_vecs):
            z = v - self.center
            if self.basis is not None:
                z = z @ self.basis
            pad = np.zeros((1, z.shape[1]), dtype=np.float32)
            padded = np.concatenate([pad, z, pad])
            parts = [z, padded[:-2], padded[2:]]
            if self.with_shape:
                parts.append(shape_features(texts[i]))  # type: ignore[index]
            out.append(np.concatenate(parts, axis=1).astype(np.float32))
        return out

    def transform(self, word_vecs: Sequence[np.ndarray], texts: Sequence[str] | None = None) -> list[np.ndarray]:
        """One (W_i, F) float32 array per text."""
        if self.center is None:
            raise DataError("the featuriser is not fitted.", hint="call fit(word_vecs, texts) first")
        if self.with_shape != (texts is not None):
            raise DataError(f"the features were fitted {'with' if self.with_shape else 'without'} texts (shape "
                            f"features) but transform got {'none' if texts is None else 'texts'}.",
                            hint="pass texts= to both fit and predict, or to neither")
        return [((f - self.mean) / self.scale).astype(np.float32) for f in self._raw(word_vecs, texts)]


def _check_tags(tags: Sequence[Sequence[int]], vecs: list[np.ndarray], n_tags: int) -> np.ndarray:
    if len(tags) != len(vecs):
        raise DataError(f"{len(vecs)} word-vector arrays but {len(tags)} tag lists; expected one per text.",
                        hint="tag the same texts with studio.spans.spans_to_tags")
    for i, (t, v) in enumerate(zip(tags, vecs)):
        if len(t) != len(v):
            raise DataError(f"text {i} has {len(v)} word vectors but {len(t)} tags; expected one tag per word.",
                            hint="build tags with spans_to_tags(word_offsets(text), spans, types)")
    flat = np.fromiter((int(x) for t in tags for x in t), dtype=np.int64)
    if n_tags < 2:
        raise ConfigError(f"n_tags = {n_tags}; a tagger needs at least 2 tags (O and one entity tag).",
                          hint="pass len(studio.spans.bio_tag_names(types))")
    if len(flat) and (flat.min() < 0 or flat.max() >= n_tags):
        raise DataError(f"tag ids must lie in 0..{n_tags - 1}; got {flat.min()}..{flat.max()}.",
                        hint="index tags into bio_tag_names(types)")
    return flat


def _split(flat: np.ndarray, lengths: Sequence[int]) -> list[np.ndarray]:
    bounds = np.cumsum([0, *lengths])
    return [flat[bounds[i]:bounds[i + 1]] for i in range(len(lengths))]


class TokenLearner:
    """Logistic regression over BIO tags on `WordFeaturizer` rows; `fit` again after each batch (warm start)."""

    def __init__(self, n_tags: int, *, config: TokenLearnerConfig | None = None,
                 featurizer: WordFeaturizer | None = None, seed: int = 0) -> None:
        self.n_tags = n_tags
        self.cfg = config or TokenLearnerConfig()
        self.featurizer = featurizer
        self.seed = seed
        self.model: SoftmaxRegression | None = None

    def fit(self, word_vecs: Sequence[np.ndarray], tags: Sequence[Sequence[int]], *,
            texts: Sequence[str] | None = None) -> TokenLearner:
        """word_vecs: N (W_i, D) arrays; tags: N lists of W_i tag ids in 0..n_tags-1; texts: for shape features.

        A featuriser not given at construction is fitted here, on these vectors."""
        vecs = _check_vecs(word_vecs, texts)
        y = _check_tags(tags, vecs, self.n_tags)
        if len(y) == 0:
            raise EmptyDataError("the labeled texts have no words; the token learner needs some.",
                                 hint="label texts with words in them")
        if self.featurizer is None:
            self.featurizer = WordFeaturizer(components=self.cfg.components, seed=self.seed).fit(vecs, texts)
        x = np.concatenate(self.featurizer.transform(vecs, texts))
        if self.model is None:
            self.model = SoftmaxRegression(x.shape[1], self.n_tags, C=self.cfg.c, max_iter=self.cfg.max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # L-BFGS stopping a few steps short is fine here
            self.model.fit(x, y)
        return self

    def predict_word_probs(self, word_vecs: Sequence[np.ndarray], *,
                           texts: Sequence[str] | None = None) -> list[np.ndarray]:
        """N (W_i, n_tags) float64 arrays, rows summing to 1 (a text without words gives (0, n_tags))."""
        if self.model is None or self.featurizer is None:
            raise DataError("the token learner is not fitted.", hint="call fit(word_vecs, tags) first")
        vecs = _check_vecs(word_vecs, texts)
        feats = self.featurizer.transform(vecs, texts)
        if not any(len(f) for f in feats):
            return [np.zeros((0, self.n_tags)) for _ in feats]
        probs = self.model.predict_proba(np.concatenate(feats))
        bounds = np.cumsum([0] + [len(f) for f in feats])
        return [probs[bounds[i]:bounds[i + 1]] for i in range(len(feats))]


def out_of_sample_word_probs(word_vecs: list[np.ndarray], tags: list[list[int]], n_tags: int, *,
                             texts: Sequence[str] | None = None, folds: int = 5, seed: int = 0,
                             config: TokenLearnerConfig | None = None,
                             progress: ProgressFn | None = None) -> list[np.ndarray]:
    """Cross-validated word probabilities: text i's (W_i, n_tags) rows come from a learner that never saw text i.

    word_vecs: N (W_i, D) arrays (encode_words); tags: N lists of W_i tag ids; texts: the N texts, for the shape
    features (None = vectors only). K-fold by text (shuffled with `seed`), so no text is split across folds.
    The featuriser (principal axes, scaling) is fitted once on every vector, without labels.
    Returns N float64 arrays, rows summing to 1.
    """
    vecs = _check_vecs(word_vecs, texts)
    _check_tags(tags, vecs, n_tags)
    n = len(vecs)
    if not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ConfigError(f"folds = {folds!r}; expected an integer >= 2.", hint="use the default 5")
    if n < folds:
        raise EmptyDataError(f"{n} texts cannot be split into {folds} folds.",
                             hint=f"label at least {folds} texts, or lower folds")
    cfg = config or TokenLearnerConfig()
    featurizer = WordFeaturizer(components=cfg.components, seed=seed).fit(vecs, texts)
    fold_of = np.random.default_rng(seed).permutation(n) % folds
    out: list[np.ndarray] = [np.zeros((0, n_tags))] * n
    for k in range(folds):
        train, test = np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)
        # A fresh model per fold: warm-starting from the previous fold's weights would start from a model that
        # saw this fold's labels, and a fit stopped short would keep some of them (a leak into the check).
        learner = TokenLearner(n_tags, config=cfg, featurizer=featurizer, seed=seed)
        sub_texts = None if texts is None else [texts[i] for i in train]
        learner.fit([vecs[i] for i in train], [tags[i] for i in train], texts=sub_texts)
        probs = learner.predict_word_probs([vecs[i] for i in test],
                                           texts=None if texts is None else [texts[i] for i in test])
        for i, p in zip(test, probs):
            out[i] = p
        if progress:
            progress(k + 1, folds)
    return out


# --- uncertainty per text (active learning) -------------------------------------------------------------------

UncertaintyFn = Callable[[list[np.ndarray]], np.ndarray]
UNCERTAINTY: dict[str, UncertaintyFn] = {}


def register_uncertainty(name: str) -> Callable[[UncertaintyFn], UncertaintyFn]:
    """Decorator: make a per-text uncertainty aggregation selectable by name."""

    def wrap(fn: UncertaintyFn) -> UncertaintyFn:
        UNCERTAINTY[name] = fn
        return fn

    return wrap


def _per_text(word_probs: list[np.ndarray], fn: Callable[[np.ndarray], float]) -> np.ndarray:
    return np.array([fn(p) if len(p) else 0.0 for p in word_probs], dtype=np.float64)


def _margins(p: np.ndarray) -> np.ndarray:
    top = -np.sort(-p, axis=1)
    return top[:, 0] - top[:, 1]


@register_uncertainty("least_confident_word")
def _least_confident_word(word_probs: list[np.ndarray]) -> np.ndarray:
    """1 - the lowest top-tag probability of any word: the text's single most doubtful word."""
    return _per_text(word_probs, lambda p: float(1.0 - p.max(axis=1).min()))


@register_uncertainty("min_margin")
def _min_margin(word_probs: list[np.ndarray]) -> np.ndarray:
    """1 - the smallest top-two margin of any word."""
    return _per_text(word_probs, lambda p: float(1.0 - _margins(p).min()))


@register_uncertainty("mean_margin")
def _mean_margin(word_probs: list[np.ndarray]) -> np.ndarray:
    """1 - the mean top-two margin over the words (long, mostly plain texts score low)."""
    return _per_text(word_probs, lambda p: float(1.0 - _margins(p).mean()))


@register_uncertainty("entropy_sum")
def _entropy_sum(word_probs: list[np.ndarray]) -> np.ndarray:
    """Total word entropy in units of log(T), over sqrt(W): grows with the doubtful words a text holds, but
    less than linearly in its length, so long texts do not win by length alone."""
    def one(p: np.ndarray) -> float:
        h = -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=1) / np.log(p.shape[1])
        return float(h.sum() / np.sqrt(len(p)))
    return _per_text(word_probs, one)


#: Measured on WNUT-17 (bench/ner_quality.py, part 2, 3 seeds): sentences labeled to reach 95% of the full-data
#: test entity F1, as a share of random's 1,717: min_margin 0.40, least_confident_word 0.46, mean_margin 0.59,
#: entropy_sum 0.63 (in words labeled: 0.46, 0.53, 0.61, 0.73).
DEFAULT_UNCERTAINTY = "min_margin"


def uncertainty(word_probs: list[np.ndarray], *, method: str = DEFAULT_UNCERTAINTY) -> np.ndarray:
    """(N,) per-text uncertainty from N (W_i, T) word-probability arrays; HIGHER = MORE UNCERTAIN (label first).

    method: a key of UNCERTAINTY. A text without words scores 0.
    """
    if method not in UNCERTAINTY:
        raise ConfigError(f"uncertainty method {method!r} is unknown; expected one of "
                          f"{', '.join(UNCERTAINTY)}.{did_you_mean(method, UNCERTAINTY)}",
                          hint=f"use the default {DEFAULT_UNCERTAINTY!r}")
    probs = [np.asarray(p, dtype=np.float64) for p in word_probs]
    if any(p.ndim != 2 or (len(p) and p.shape[1] < 2) for p in probs):
        raise DataError("word_probs must be (W_i, T) arrays with T >= 2 tags.",
                        hint="pass TokenLearner.predict_word_probs(...) unchanged")
    return UNCERTAINTY[method](probs)
