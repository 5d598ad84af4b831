"""Near-duplicates: the same words after normalising case and whitespace, or vectors nearly identical.

Mail and news headers, quoted replies and signatures (studio/boilerplate.py) are not the text's own words: two
replies in one thread share them, so they are compared without them. A link found by the embeddings between two
texts that had such lines is kept only if their own words are as close (TF-IDF cosine >= the same threshold).
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd

from studio.boilerplate import strip_boilerplate
from studio.checks.base import Check, QualityContext, issue_rows, register_check
from studio.checks.neighbours import KnnGraph, knn_graph
from studio.errors import DataError
from studio.types import Embeddings

_SPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Lower case, whitespace collapsed and stripped: what "exact duplicate" compares."""
    return _SPACE.sub(" ", str(text)).strip().lower()


def near_duplicate_groups(texts: Sequence[str], embeddings: Embeddings | None, *, threshold: float = 0.98,
                          knn: KnnGraph | None = None, k: int = 10) -> np.ndarray:
    """(N,) int group ids: rows with the same id are (near-)duplicates; a row alone has an id of its own.

    Groups are connected components of two kinds of links: equal `normalise_text` of the texts' own words
    (headers, quotes, signatures stripped), and cosine similarity >= threshold among each row's k nearest
    neighbours (`knn`, or a graph of `embeddings`; with neither, exact links only). A neighbour link between
    texts that had header or quoted lines must hold on their own words too (TF-IDF cosine >= threshold): the
    vectors saw the shared lines. Ids are 0..G-1, numbered by first row, so they are stable for the same input.
    Use them as `groups` to keep duplicates inside one split.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(texts)
    if not 0.0 < threshold <= 1.0:
        raise DataError(f"threshold = {threshold!r} is invalid: expected a cosine similarity in (0, 1].",
                        hint="use e.g. 0.98; 1.0 keeps only identical embeddings")
    if embeddings is not None and len(embeddings) != n:
        raise DataError(f"embeddings has {len(embeddings)} rows but there are {n} texts; expected one per text.",
                        hint="encode exactly these texts, in the same order")
    bodies = [strip_boilerplate(t) for t in texts]
    stripped = np.array([b != str(t) for b, t in zip(bodies, texts)], dtype=bool)
    bodies = [b if b.strip() else str(t) for b, t in zip(bodies, texts)]  # nothing of its own: compare it whole
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    first: dict[str, int] = {}
    exact = np.array([first.setdefault(normalise_text(b), i) for i, b in enumerate(bodies)], dtype=np.int64)
    src.append(np.arange(n))
    dst.append(exact)
    graph = knn if knn is not None else (knn_graph(embeddings, k=k) if embeddings is not None and n > 1 else None)
    if graph is not None and graph.k > 0:
        close = graph.similarities >= threshold - 1e-6  # float32 rounding of identical vectors
        rows, cols = np.nonzero(close)
        other = graph.indices[rows, cols]
        check = stripped[rows] | stripped[other]
        if check.any():
            keep = ~check
            keep[check] = _body_similarity(bodies, rows[check], other[check]) >= threshold - 1e-6
            rows, other = rows[keep], other[keep]
        src.append(rows)
        dst.append(other)
    a, b = np.concatenate(src), np.concatenate(dst)
    adjacency = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, comp = connected_components(adjacency, directed=False)
    # Renumber by first occurrence so ids do not depend on scipy's internal order.
    _, first_idx, inverse = np.unique(comp, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first_idx))
    return rank[inverse].astype(np.int64)


def _body_similarity(bodies: Sequence[str], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TF-IDF (word 1-2-gram, every term kept) cosine of bodies[a[i]] and bodies[b[i]]; 1.0 / 0.0 by equality
    where no word is left to compare."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    rows = np.unique(np.concatenate([a, b]))
    position = {int(r): i for i, r in enumerate(rows)}
    ia = np.array([position[int(r)] for r in a])
    ib = np.array([position[int(r)] for r in b])
    try:
        x = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform([bodies[r] for r in rows])
    except ValueError:  # no word at all (punctuation, digits only)
        return np.array([float(normalise_text(bodies[i]) == normalise_text(bodies[j])) for i, j in zip(a, b)])
    return np.asarray(x[ia].multiply(x[ib]).sum(axis=1)).ravel()


@register_check
class NearDuplicates(Check):
    name = "near_duplicate"
    description = ("Same words after normalising case/whitespace (mail headers, quotes, signatures left out), or "
                   "vectors above the similarity threshold; reported as groups.")

    def run(self, ctx: QualityContext) -> pd.DataFrame:
        threshold = float(ctx.options.get("near_duplicate_threshold", 0.98))
        groups = near_duplicate_groups(ctx.texts, None, threshold=threshold, knn=ctx.knn)
        sizes = np.bincount(groups)
        rows = np.flatnonzero(sizes[groups] > 1)
        if len(rows) == 0:
            return issue_rows(ctx, self.name, [], [], [])
        # Score = 1 - closest similarity to another member of the group: an exact copy scores 0.
        in_group = groups[ctx.knn.indices[rows]] == groups[rows, None]
        best = np.where(in_group, ctx.knn.similarities[rows], -1.0).max(axis=1, initial=-1.0)
        norm = [normalise_text(strip_boilerplate(ctx.texts[i]) or ctx.texts[i]) for i in rows]
        exact_count = pd.Series(norm).map(pd.Series(norm).value_counts()).to_numpy()
        best = np.where(exact_count > 1, 1.0, best)
        score = np.clip(1.0 - np.where(best < 0, threshold, best), 0.0, 1.0)
        labels = ctx.labels
        mixed = pd.Series(labels[rows]).groupby(groups[rows]).transform("nunique").to_numpy() > 1
        details = [f"group of {sizes[g]}" + (", members carry different labels" if m else "")
                   for g, m in zip(groups[rows], mixed)]
        return issue_rows(ctx, self.name, rows, score, np.ones(len(rows), bool), group_id=groups[rows],
                          details=details)
