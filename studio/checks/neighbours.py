"""k-nearest-neighbour graph on L2-normalised rows, computed once and shared.

The label-quality probabilities (kNN vote), the outlier check and the near-duplicate check all need the same
graph; building it once is what keeps a pass fast (cleanlab's Datalab would build its own graph per issue type
and fan out processes on a 2-core machine).

Up to EXACT_MAX_ROWS rows the graph is exact: a chunked dense product, every row against every other. That is
N² work: 714 s at 100,000 rows on 2 busy cores, over twice the whole pass's 5-minute target. Above it, an
inverted-file index (faiss IVF) clusters the rows and compares each row only with the rows of the few clusters
nearest to it (57 s there); the similarities it returns are exact, only a neighbour may be missed: recall@10
0.996 against the exact graph on 10,000 banking77 texts, label-error F1 within the spread over noise seeds
(bench/quality_scale.py). Sparse rows (TF-IDF) are searched in a TruncatedSVD space and re-scored exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from studio.errors import DataError
from studio.types import Embeddings

#: Graphs of more rows than this are approximate (IVF); [quality] exact_knn_max_rows overrides it. Every data set
#: of the benchmarks (10,003 texts at most) keeps its exact graph.
EXACT_MAX_ROWS = 20_000
#: IVF clusters per square root of N: 1,265 at 100,000 rows (at most N / 39: 256 at 10,000).
IVF_LISTS_PER_SQRT = 4.0
#: Clusters searched per row, as a share of the clusters (at least IVF_MIN_PROBES): recall@10 of 0.99 and more
#: against the exact graph on banking77's MiniLM embeddings at 10,000 and 100,000 rows.
IVF_PROBE_SHARE = 1 / 16
IVF_MIN_PROBES = 16
#: faiss warns below 39 training rows per cluster: fewer rows make fewer clusters (1 cluster = exact search).
_MIN_ROWS_PER_LIST = 39
#: Sparse rows (TF-IDF) are searched in this many SVD dimensions, then the best RERANK x k candidates of each row
#: are re-scored on the sparse rows, so the similarities stay exact TF-IDF cosines.
SVD_DIMS = 256
RERANK = 4
#: The SVD is fitted on at most this many rows (seeded sample) and columns (the most frequent), so its time does
#: not grow with N nor its memory with a long-document vocabulary; 2 power iterations found as many neighbours
#: as 5 on longdocs in half the time.
SVD_SAMPLE_ROWS = 20_000
SVD_MAX_COLUMNS = 65_536
SVD_ITER = 2


@dataclass(frozen=True)
class KnnGraph:
    """indices: (N, k) int neighbour rows, most similar first, never the row itself.
    similarities: (N, k) float32 cosine similarities in [-1, 1], descending along each row."""

    indices: npt.NDArray[np.int64]
    similarities: npt.NDArray[np.float32]

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])


def knn_graph(embeddings: Embeddings, *, k: int = 20, chunk_size: int = 1024,
              exact_max_rows: int = EXACT_MAX_ROWS, seed: int = 0) -> KnnGraph:
    """Cosine kNN graph of (N, D) L2-normalised rows, dense embeddings or a scipy sparse matrix (e.g. the TF-IDF
    rows of studio/sparse_model.py); k is capped at N - 1.

    Exact when N <= exact_max_rows: memory chunk_size x N floats, time one (N, D) x (D, N) product plus a partial
    sort. Above, approximate (faiss IVF; sparse rows via a TruncatedSVD): about N^1.5 instead of N², the same
    output for the same input (seeded clustering). exact_max_rows = 0 makes every graph approximate.
    """
    from scipy.sparse import issparse

    sparse = issparse(embeddings)
    x = embeddings.tocsr().astype(np.float32) if sparse else np.ascontiguousarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise DataError(f"embeddings has shape {x.shape}; expected a 2-D (N, D) array.",
                        hint="pass studio.embeddings.encode(texts), one row per text")
    if exact_max_rows < 0:
        raise DataError(f"exact_max_rows = {exact_max_rows!r}; expected 0 (always approximate) or a number of rows.",
                        hint=f"use the default, {EXACT_MAX_ROWS}")
    n = x.shape[0]
    k = int(min(k, max(n - 1, 0)))
    if k == 0:
        return KnnGraph(np.zeros((n, 0), dtype=np.int64), np.zeros((n, 0), dtype=np.float32))
    if n <= exact_max_rows:
        return _exact(x, k, chunk_size=chunk_size)
    return _approximate_sparse(x, k, seed=seed) if sparse else _approximate_dense(x, k, seed=seed)


def _exact(x, k: int, *, chunk_size: int = 1024, rows: np.ndarray | None = None) -> KnnGraph:
    """Exact graph of the query `rows` (default all) against every row of x; 1 <= k <= N - 1."""
    from scipy.sparse import issparse

    sparse = issparse(x)
    every = rows is None
    rows = np.arange(x.shape[0]) if every else np.asarray(rows, dtype=np.int64)
    indices = np.zeros((len(rows), k), dtype=np.int64)
    sims = np.zeros((len(rows), k), dtype=np.float32)
    for start in range(0, len(rows), chunk_size):
        stop = min(len(rows), start + chunk_size)
        query = rows[start:stop]
        chunk = x[start:stop] if every else x[query]
        block = (chunk @ x.T).toarray() if sparse else chunk @ x.T
        block[np.arange(stop - start), query] = -np.inf  # a text is not its own neighbour
        part = np.argpartition(-block, k - 1, axis=1)[:, :k]
        part_sims = np.take_along_axis(block, part, axis=1)
        order = np.argsort(-part_sims, axis=1, kind="stable")
        indices[start:stop] = np.take_along_axis(part, order, axis=1)
        sims[start:stop] = np.take_along_axis(part_sims, order, axis=1)
    return KnnGraph(indices, sims)


def _ivf_search(x: np.ndarray, k: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, k) approximate nearest rows of every row of dense unit rows x, by inner product, best first, the row
    itself usually among them; -1 (similarity -inf) where the searched clusters held fewer than k rows."""
    import faiss

    n, d = x.shape
    lists = int(max(1, min(round(IVF_LISTS_PER_SQRT * np.sqrt(n)), n // _MIN_ROWS_PER_LIST)))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.spherical = True  # centroids on the unit sphere, like the rows: clusters by cosine
    index.cp.niter = 10
    index.cp.max_points_per_centroid = 64  # k-means on a seeded sample: training time stays a small share
    index.train(x)
    index.add(x)
    index.nprobe = int(min(lists, max(IVF_MIN_PROBES, np.ceil(lists * IVF_PROBE_SHARE))))
    sims, idx = index.search(x, k)
    sims[idx < 0] = -np.inf
    return idx.astype(np.int64), sims


def _best_k(x, candidates: np.ndarray, sims: np.ndarray, k: int) -> KnnGraph:
    """The k best candidates of each row that are not the row itself; rows left with fewer than k valid
    candidates are searched exactly instead."""
    n = len(candidates)
    sims = np.where(candidates == np.arange(n)[:, None], -np.inf, sims)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    indices = np.take_along_axis(candidates, order, axis=1)
    best = np.take_along_axis(sims, order, axis=1).astype(np.float32)
    short = np.flatnonzero(~np.isfinite(best).all(axis=1))
    if len(short):
        exact = _exact(x, k, rows=short)
        indices[short], best[short] = exact.indices, exact.similarities
    return KnnGraph(indices, best)


def _approximate_dense(x: np.ndarray, k: int, *, seed: int) -> KnnGraph:
    """IVF graph of dense unit rows: the similarities are the exact inner products of the neighbours found."""
    candidates, sims = _ivf_search(x, min(k + 1, x.shape[0]), seed=seed)
    return _best_k(x, candidates, sims, k)


def _approximate_sparse(x, k: int, *, seed: int) -> KnnGraph:
    """Sparse unit rows (TF-IDF): candidates from an IVF search in SVD_DIMS TruncatedSVD dimensions (a dense index
    cannot hold the vocabulary's dimensions), re-scored by their exact cosine on the sparse rows."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.preprocessing import normalize

    n = x.shape[0]
    frequency = np.bincount(x.indices, minlength=x.shape[1])
    columns = np.sort(np.argsort(-frequency, kind="stable")[:SVD_MAX_COLUMNS])
    dims = min(SVD_DIMS, len(columns) - 1, n - 1)
    if dims < 1:  # one column (or two rows): nothing to reduce, and the exact graph is cheap
        return _exact(x, k)
    sample = np.sort(np.random.default_rng(seed).permutation(n)[:SVD_SAMPLE_ROWS])
    svd = TruncatedSVD(n_components=dims, n_iter=SVD_ITER, random_state=seed).fit(x[sample][:, columns])
    reduced = np.ascontiguousarray(normalize(svd.transform(x[:, columns])), dtype=np.float32)
    candidates, _ = _ivf_search(reduced, min(RERANK * k + 1, n), seed=seed)
    return _best_k(x, candidates, _pair_cosines(x, candidates), k)


def _pair_cosines(x, candidates: np.ndarray, *, chunk_size: int = 256) -> np.ndarray:
    """(N, C) float32: row i of sparse x times row candidates[i, j]; -inf where the candidate is -1 (none)."""
    out = np.full(candidates.shape, -np.inf, dtype=np.float32)
    for start in range(0, len(candidates), chunk_size):
        cand = candidates[start:start + chunk_size]
        valid = cand >= 0
        others, position = np.unique(cand[valid], return_inverse=True)
        block = (x[start:start + len(cand)] @ x[others].T).toarray()
        rows = np.nonzero(valid)[0]
        chunk = out[start:start + len(cand)]
        chunk[valid] = block[rows, position]
    return out
