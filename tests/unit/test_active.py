"""Query strategies, confidence score and the learning-curve forecast."""

from __future__ import annotations

import numpy as np
import pytest

from studio.active import STRATEGIES, confidence_score, fit_learning_curve, get_strategy
from studio.errors import ConfigError, DataError


def clustered(n_clusters: int = 6, per: int = 40, dim: int = 16, seed: int = 0):
    """Well-separated unit-norm blobs; returns (embeddings, cluster id per row)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_clusters, dim)) * 5
    x = np.concatenate([c + rng.normal(scale=0.3, size=(per, dim)) for c in centers])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(n_clusters), per)


def confident_probs(n: int, k: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k) * 0.2, size=n) * 0.2
    p[np.arange(n), rng.integers(0, k, n)] += 0.8  # every row confident by default
    return p / p.sum(axis=1, keepdims=True)


def test_registry_and_unknown_name():
    expected = {"margin", "least_confidence", "entropy", "diverse_margin", "random", "cold_start"}
    assert expected <= set(STRATEGIES)
    with pytest.raises(ConfigError, match="Did you mean 'margin'"):
        get_strategy("margn")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_each_strategy_returns_n_unique_indices(name):
    x, _ = clustered()
    p = confident_probs(len(x))
    picked = get_strategy(name).select(p, n=12, embeddings=x, seed=1)
    assert picked.dtype == np.int64 and len(picked) == 12 and len(set(picked.tolist())) == 12
    assert picked.min() >= 0 and picked.max() < len(x)
    assert len(get_strategy(name).select(p, n=10_000, embeddings=x)) == len(x)  # capped at the pool


def test_margin_picks_planted_ambiguous_rows_with_deterministic_ties():
    p = confident_probs(200, k=5)
    planted = [17, 88, 150]
    for i in planted:
        p[i] = [0.45, 0.45, 0.04, 0.03, 0.03]  # margin 0, identical: tie broken by index
    p[60] = [0.5, 0.1, 0.1, 0.1, 0.2]  # low max prob but a clear margin
    assert get_strategy("margin").select(p, n=3).tolist() == planted
    # Least confidence ranks a flat row first; margin does not.
    p[61] = [0.22, 0.2, 0.2, 0.19, 0.19]
    assert get_strategy("least_confidence").select(p, n=1).tolist() == [61]
    assert get_strategy("entropy").select(p, n=1).tolist() == [61]


def test_scores_direction():
    sure = np.array([[0.98, 0.01, 0.01]])
    unsure = np.array([[0.34, 0.33, 0.33]])
    for name in ("margin", "least_confidence", "entropy"):
        s = get_strategy(name)
        assert s.scores(unsure)[0] > s.scores(sure)[0]
        assert 0.0 <= s.scores(sure)[0] <= 1.0
    conf = confidence_score(np.vstack([sure, unsure]))
    assert conf[0] > conf[1] and np.all((conf >= 0) & (conf <= 1))
    np.testing.assert_allclose(conf, [0.97, 0.01])


def test_diverse_margin_spreads_over_clusters():
    x, cluster = clustered(n_clusters=6, per=40)
    p = confident_probs(len(x))
    # The 14 most ambiguous rows all sit in cluster 0, but the pool (pool_factor 4 x 6 = 24) is wider.
    rng = np.random.default_rng(3)
    for i in np.flatnonzero(cluster == 0)[:14]:
        p[i] = [0.49, 0.48, 0.02, 0.01]
    for c in range(1, 6):
        for i in np.flatnonzero(cluster == c)[:2]:
            a = 0.40 + rng.random() * 0.05
            p[i] = [a, 0.75 - a, 0.15, 0.10]
    plain = get_strategy("margin").select(p, n=6)
    diverse = get_strategy("diverse_margin").select(p, n=6, embeddings=x, seed=0)
    assert len(set(cluster[plain])) == 1
    assert len(set(cluster[diverse])) == 6


def test_cold_start_covers_clusters_without_a_model():
    x, cluster = clustered(n_clusters=8, per=30, seed=2)
    picked = get_strategy("cold_start").select(None, n=8, embeddings=x, seed=0)
    assert sorted(set(cluster[picked])) == list(range(8))
    random_cover = [len(set(cluster[get_strategy("random").select(None, n=8, embeddings=x, seed=s)]))
                    for s in range(5)]
    assert min(random_cover) < 8  # random usually misses a cluster; cold start never does here


def test_cold_start_picks_the_typical_task_of_a_cluster_and_is_deterministic():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=16), rng.normal(size=16)
    # One cluster: two dense clumps (30 and 20 tasks) joined by 5 stray tasks; its centroid lies on the
    # stray ones, so "nearest the centroid" would pick an untypical task (index 50-54).
    bridge = np.array([a + t * (b - a) for t in np.linspace(0.3, 0.5, 5)])
    x = np.vstack([a + rng.normal(scale=0.02, size=(30, 16)), b + rng.normal(scale=0.02, size=(20, 16)),
                   bridge + rng.normal(scale=0.02, size=(5, 16))]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cold = get_strategy("cold_start")
    assert cold.select(None, n=1, embeddings=x, seed=0)[0] < 30  # inside the bigger clump
    big, _ = clustered(n_clusters=5, per=60, seed=4)
    first = cold.select(None, n=7, embeddings=big, seed=3)
    assert first.tolist() == cold.select(None, n=7, embeddings=big, seed=3).tolist()


def test_typicality_with_a_sampled_reference_agrees_with_the_exact_one():
    from studio.active import _typicality

    x, _ = clustered(n_clusters=1, per=300, seed=5)
    x[-1] = -x[0]  # one far outlier
    exact = _typicality(x, 10, seed=0)
    sampled = _typicality(x, 10, seed=0, max_reference=100)
    assert exact.shape == sampled.shape == (300,)
    assert exact.argmin() == sampled.argmin() == 299
    assert np.corrcoef(exact[:-1], sampled[:-1])[0, 1] > 0.5
    assert _typicality(x[:1], 10, seed=0).tolist() == [1.0]


def test_random_is_seeded():
    p = confident_probs(100)
    r = get_strategy("random")
    assert r.select(p, n=10, seed=4).tolist() == r.select(p, n=10, seed=4).tolist()
    assert r.select(p, n=10, seed=4).tolist() != r.select(p, n=10, seed=5).tolist()


def test_bad_inputs():
    with pytest.raises(DataError, match="sum to 1"):
        get_strategy("margin").select(np.array([[0.9, 0.9]]), n=1)
    with pytest.raises(DataError, match="needs pred_probs"):
        get_strategy("margin").select(None, n=1)
    with pytest.raises(DataError, match="needs embeddings"):
        get_strategy("diverse_margin").select(confident_probs(10), n=2)
    with pytest.raises(DataError, match="n = -1"):
        get_strategy("margin").select(confident_probs(10), n=-1)


def test_forecast_recovers_known_curve():
    rng = np.random.default_rng(0)
    n = np.array([100, 200, 400, 800, 1600, 3200], dtype=float)
    a, b, c = 0.9, 0.5, 0.5
    y = a - b * n ** -c + rng.normal(0, 0.001, len(n))
    f = fit_learning_curve(n[:5], y[:5], target=0.89)
    assert f.method == "power_law" and f.reachable
    assert f.params is not None and abs(f.params[0] - a) < 0.01 and abs(f.params[2] - c) < 0.1
    true_n = (b / (a - 0.89)) ** (1 / c)  # 2500
    assert abs(f.labels_needed - true_n) / true_n < 0.25
    assert f.low is not None and f.high is not None and f.low <= f.labels_needed <= f.high


def test_forecast_target_above_asymptote_and_fallbacks():
    n = np.array([100, 200, 400, 800], dtype=float)
    y = 0.8 - 0.4 * n ** -0.5
    above = fit_learning_curve(n, y, target=0.9)
    assert not above.reachable and above.labels_needed is None and "asymptote" in above.message
    two = fit_learning_curve(n[:2], y[:2], target=0.78)
    assert two.method == "log_linear" and two.labels_needed > 200
    one = fit_learning_curve(n[:1], y[:1], target=0.78)
    assert one.labels_needed is None and one.method == "none"
    done = fit_learning_curve(n, y, target=0.7)
    assert done.method == "observed" and done.labels_needed == 100
