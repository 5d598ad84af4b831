"""The approximate neighbour graph (faiss IVF above a row threshold) against the exact one, on seeded data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from studio.checks.neighbours import KnnGraph, knn_graph
from studio.errors import ConfigError, DataError
from studio.quality import QualityConfig, run_quality


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """As the quality pass runs it ([quality] threads = 1): spinning BLAS threads on a busy 2-core machine made the
    SVD here ten times slower."""
    import faiss  # noqa: F401  (every BLAS and OpenMP loaded first: threadpoolctl limits only loaded ones)
    import scipy.linalg  # noqa: F401
    import sklearn.decomposition  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _clustered(n: int, *, d: int = 32, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """(n, d) unit rows around `clusters` centres: neighbourhoods like sentence embeddings have, not uniform noise
    (on which no index beats brute force)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)) * 2
    x = centres[rng.integers(0, clusters, size=n)] + rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _recall(exact: KnnGraph, approx: KnnGraph) -> float:
    """Share of the approximate neighbours at least as similar as the exact k-th one (ties count as found)."""
    return float((approx.similarities >= exact.similarities[:, -1:] - 1e-5).mean())


def _check_shape(graph: KnnGraph, n: int, k: int) -> None:
    assert graph.indices.shape == graph.similarities.shape == (n, k)
    assert (graph.indices >= 0).all() and (graph.indices < n).all()
    assert not (graph.indices == np.arange(n)[:, None]).any(), "a row is never its own neighbour"
    assert (np.diff(graph.similarities, axis=1) <= 1e-6).all(), "most similar first"


def test_approximate_graph_finds_nearly_every_exact_neighbour_with_exact_similarities() -> None:
    x = _clustered(3000)
    exact = knn_graph(x, k=10)
    approx = knn_graph(x, k=10, exact_max_rows=1000)
    _check_shape(approx, 3000, 10)
    assert _recall(exact, approx) >= 0.97
    # The similarities are the real inner products of the rows found, not estimates.
    direct = np.einsum("nd,nkd->nk", x, x[approx.indices])
    np.testing.assert_allclose(approx.similarities, direct, atol=1e-5)


def test_the_graph_is_exact_up_to_the_threshold_and_approximate_above(monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.checks import neighbours

    x = _clustered(500)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    brute = np.argsort(-sims, axis=1, kind="stable")[:, :5]
    exact = knn_graph(x, k=5, exact_max_rows=500)
    np.testing.assert_array_equal(exact.indices, brute)
    np.testing.assert_allclose(exact.similarities, np.take_along_axis(sims, brute, axis=1), atol=1e-6)
    used: list[int] = []
    approximate = neighbours._approximate_dense

    def spy(x, k, **kwargs):
        used.append(len(x))
        return approximate(x, k, **kwargs)

    monkeypatch.setattr(neighbours, "_approximate_dense", spy)
    knn_graph(x, k=5, exact_max_rows=500)
    assert used == []
    knn_graph(x, k=5, exact_max_rows=499)
    assert used == [500]


def test_same_input_gives_the_same_graph() -> None:
    x = _clustered(2000, seed=3)
    first, second = knn_graph(x, k=8, exact_max_rows=0), knn_graph(x, k=8, exact_max_rows=0)
    np.testing.assert_array_equal(first.indices, second.indices)
    np.testing.assert_array_equal(first.similarities, second.similarities)


def _tfidf_rows(n: int, seed: int = 0):
    """Unit TF-IDF rows of n short synthetic texts: each mixes words of one of 30 topics with common words."""
    from studio.sparse_model import text_vectors

    rng = np.random.default_rng(seed)
    topics = [[f"t{t}w{w}" for w in range(12)] for t in range(30)]
    common = [f"c{w}" for w in range(20)]
    texts = [" ".join(list(rng.choice(topics[rng.integers(30)], size=6)) + list(rng.choice(common, size=3)))
             for _ in range(n)]
    return text_vectors(texts)


def test_sparse_rows_are_searched_in_svd_space_and_rescored_exactly() -> None:
    x = _tfidf_rows(2500)
    exact = knn_graph(x, k=10)
    approx = knn_graph(x, k=10, exact_max_rows=0)
    _check_shape(approx, 2500, 10)
    assert _recall(exact, approx) >= 0.8
    direct = np.asarray(x[np.repeat(np.arange(2500), 10)].multiply(x[approx.indices.ravel()]).sum(axis=1))
    np.testing.assert_allclose(approx.similarities, direct.reshape(2500, 10), atol=1e-5)
    again = knn_graph(x, k=10, exact_max_rows=0)
    np.testing.assert_array_equal(approx.indices, again.indices)


@pytest.mark.parametrize("n", [1, 2, 3, 30])
def test_k_at_least_n_minus_one_gives_every_other_row(n: int) -> None:
    x = _clustered(n, seed=n)
    for data in (x, csr_matrix(x)):
        graph = knn_graph(data, k=100, exact_max_rows=0)
        _check_shape(graph, n, n - 1)
        for i in range(n):
            assert set(graph.indices[i]) == set(range(n)) - {i}


def test_rows_the_searched_clusters_cannot_fill_are_searched_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    # 800 rows make 20 clusters and 16 are searched: a row whose 16 hold fewer than k + 1 rows would get -1
    # entries; it gets its exact neighbours instead (here about a third of the rows), the others keep the index's.
    from studio.checks import neighbours

    searched: list[int] = []
    exact = neighbours._exact

    def spy(x, k, **kwargs):
        searched.append(len(kwargs["rows"]))
        return exact(x, k, **kwargs)

    x = _clustered(800, clusters=4, seed=5)
    monkeypatch.setattr(neighbours, "_exact", spy)
    graph = knn_graph(x, k=600, exact_max_rows=0)
    monkeypatch.undo()
    assert len(searched) == 1 and 0 < searched[0] < 800
    _check_shape(graph, 800, 600)
    assert np.isfinite(graph.similarities).all()
    assert _recall(knn_graph(x, k=600), graph) >= 0.9  # 600 of 800 rows reach into clusters not searched


def test_bad_threshold_is_refused() -> None:
    with pytest.raises(DataError, match="exact_max_rows"):
        knn_graph(_clustered(10), k=3, exact_max_rows=-1)
    with pytest.raises(ConfigError, match="exact_knn_max_rows"):
        QualityConfig(exact_knn_max_rows=-5)


def test_quality_pass_with_the_approximate_graph_flags_the_same_planted_problems() -> None:
    """4 separated clusters, 10% of the labels flipped: both graphs find the flips and the planted duplicate."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 150)
    x = rng.normal(size=(4, 32))[y] * 3 + rng.normal(size=(600, 32))
    x[1] = x[0] + 1e-3
    emb = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    noisy = y.copy()
    flipped = rng.choice(600, size=60, replace=False)
    noisy[flipped] = (y[flipped] + 1) % 4
    texts = [f"question {i} about topic {c}" for i, c in enumerate(y)]
    names = ["a", "b", "c", "d"]
    reports = [run_quality(texts, noisy, names, embeddings=emb, config=QualityConfig(exact_knn_max_rows=m))
               for m in (10**9, 0)]
    for report in reports:
        found = set(report.flagged("label_issue")["task_index"])
        assert len(found & set(flipped)) >= 55
        duplicates = report.flagged("near_duplicate")
        assert {0, 1} <= set(duplicates["task_index"])
    assert np.allclose(reports[0].pred_probs, reports[1].pred_probs, atol=0.05)
