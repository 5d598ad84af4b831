"""The sparse text view: TF-IDF features and a cross-validated linear model fitted on them in seconds.

A frozen sentence encoder sees a text through a window of 128 tokens and blurs spelling; a bag of words and
character n-grams sees every word of a long document and every typo of a short one, and a linear model on it
needs no embeddings at all. This is the label-quality candidate `tfidf_lr` (studio/probabilities.py) and the
neighbour space of long documents (studio/quality.py).

Direction: texts and labels in, sparse matrices and (N, K) out-of-sample probabilities out. No I/O.
"""

from __future__ import annotations

import warnings as _warnings
from typing import Callable, Sequence

import numpy as np
import numpy.typing as npt

from studio.types import PredProbs

#: The character view reads this many leading characters of each text. It adds what words miss in short texts
#: (spelling, word pieces); over a whole article it multiplies the matrix several times for no gain
#: (bench/quality.py on longdocs: 5x the fitting time, the same errors found), while the word view reads all.
CHAR_VIEW_CHARS = 1000


def tfidf_features(texts: Sequence[str], *, chars: bool = True, char_limit: int = CHAR_VIEW_CHARS):
    """(N, V) float32 CSR, rows L2-normalised: TF-IDF (sublinear tf) of word 1-2-grams seen at least twice, plus
    with `chars` character 2-5-grams within word boundaries of each text's first `char_limit` characters.
    Fitted on all texts: the vocabulary uses no labels, so it leaks nothing into cross-validation folds."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    texts = [str(t) for t in texts]
    views = [(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, dtype=np.float32), texts)]
    if chars:
        views.append((TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True,
                                      dtype=np.float32), [t[:char_limit] for t in texts]))
    parts = []
    for vectorizer, view in views:
        try:
            parts.append(vectorizer.fit_transform(view))
        except ValueError:  # no n-gram occurs twice (tiny or odd data): that view has nothing to add
            continue
    if not parts:  # every text unique down to its characters: keep all character 1-3-grams
        parts = [TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), dtype=np.float32).fit_transform(texts)]
    return normalize(hstack(parts).tocsr()).astype(np.float32)


def cross_val_sparse_lr(features, labels: npt.NDArray[np.int64], n_classes: int,
                        folds: list[tuple[np.ndarray, np.ndarray]], *, c: float = 10.0, max_iter: int = 30,
                        tol: float = 1e-2, seed: int = 0, tick: Callable[[], None] | None = None) -> PredProbs:
    """(N, K) out-of-sample probabilities of a multinomial logistic regression on sparse `features`, one fit per
    fold (row i scored by the fold that left it out; classes a fold never saw get 0).

    The SAG-family solver (saga) touches each stored entry once per epoch, so a 10,000-document fit takes
    seconds where lbfgs on the same matrix takes minutes. Each fold starts from zero: warm-starting from the
    previous fold's weights, which were fitted on this fold's test rows, leaked their labels into the scores
    (on longdocs with 20% noise, F1 of the flagged labels 0.92 -> 0.78). `c`: inverse L2 strength (TF-IDF rows
    have unit norm, so larger than for embeddings); `max_iter`: epochs; `tol` 1e-2 stops after ~10 epochs with
    the same figures as 1e-3 at a third of the time (bench/quality.py).
    """
    from sklearn.linear_model import LogisticRegression

    out = np.zeros((len(labels), n_classes))
    for train, test in folds:
        classes = np.unique(labels[train])
        model = LogisticRegression(C=c, solver="saga", max_iter=max_iter, tol=tol, random_state=seed)
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")  # ConvergenceWarning: a few epochs short changes no ranking here
            model.fit(features[train], labels[train])
        out[np.ix_(test, classes)] = model.predict_proba(features[test])
        if tick:
            tick()
    return out


def text_vectors(texts: Sequence[str]):
    """(N, V) float32 CSR, unit rows: TF-IDF word 1-2-grams of each text's own words (mail / news headers,
    quoted replies and signatures stripped, studio/boilerplate.py). The neighbour space of texts the encoder
    does not read (long documents): cosine = dot product, as for embeddings."""
    from studio.boilerplate import strip_boilerplate

    bodies = [strip_boilerplate(t) or str(t) for t in texts]
    return tfidf_features(bodies, chars=False)
