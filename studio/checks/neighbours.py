"""Exact k-nearest-neighbour graph on L2-normalised embeddings, computed once and shared.

The label-quality probabilities (kNN vote), the outlier check and the near-duplicate check all need the same
graph; building it once with a chunked dense product is what keeps a 10,000-text pass fast (cleanlab's
Datalab would build its own graph per issue type and fan out processes on a 2-core machine).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from studio.errors import DataError
from studio.types import Embeddings


@dataclass(frozen=True)
class KnnGraph:
    """indices: (N, k) int neighbour rows, most similar first, never the row itself.
    similarities: (N, k) float32 cosine similarities in [-1, 1], descending along each row."""

    indices: npt.NDArray[np.int64]
    similarities: npt.NDArray[np.float32]

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])


def knn_graph(embeddings: Embeddings, *, k: int = 20, chunk_size: int = 1024) -> KnnGraph:
    """Exact cosine kNN graph of (N, D) L2-normalised rows, dense embeddings or a scipy sparse matrix (e.g. the
    TF-IDF rows of studio/sparse_model.py); k is capped at N - 1.

    Memory stays at chunk_size x N floats; time is one (N, D) x (D, N) product plus a partial sort.
    """
    from scipy.sparse import issparse

    sparse = issparse(embeddings)
    x = embeddings.tocsr().astype(np.float32) if sparse else np.ascontiguousarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise DataError(f"embeddings has shape {x.shape}; expected a 2-D (N, D) array.",
                        hint="pass studio.embeddings.encode(texts), one row per text")
    n = x.shape[0]
    k = int(min(k, max(n - 1, 0)))
    indices = np.zeros((n, k), dtype=np.int64)
    sims = np.zeros((n, k), dtype=np.float32)
    if k == 0:
        return KnnGraph(indices, sims)
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        block = (x[start:stop] @ x.T).toarray() if sparse else x[start:stop] @ x.T
        rows = np.arange(stop - start)
        block[rows, rows + start] = -np.inf  # a text is not its own neighbour
        part = np.argpartition(-block, k - 1, axis=1)[:, :k]
        part_sims = np.take_along_axis(block, part, axis=1)
        order = np.argsort(-part_sims, axis=1, kind="stable")
        indices[start:stop] = np.take_along_axis(part, order, axis=1)
        sims[start:stop] = np.take_along_axis(part_sims, order, axis=1)
    return KnnGraph(indices, sims)
