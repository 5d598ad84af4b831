"""The fast learner (studio/learner.py): self-training on the pool, warm-started refits, clear errors."""

import numpy as np
import pytest

from studio.errors import ConfigError, DataError, EmptyDataError
from studio.learner import ActiveConfig, FastLearner, SoftmaxRegression


def blobs(n_per_class: int, k: int = 4, d: int = 16, seed: int = 0):
    """k well-separated Gaussian clusters in d dimensions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(k, d))
    y = np.repeat(np.arange(k), n_per_class)
    return centres[y] + rng.normal(0, 1, size=(len(y), d)), y


def test_self_training_uses_confident_pool_tasks_and_predicts_every_class():
    x, y = blobs(60)
    labeled = np.concatenate([np.flatnonzero(y == c)[:2] for c in range(4)])
    pool = np.setdiff1d(np.arange(len(y)), labeled)
    learner = FastLearner(x, 4).fit(x[labeled], y[labeled], x[pool])
    assert 0 < learner.pseudo_labels <= len(pool)
    probs = learner.predict_proba(x[pool])
    assert probs.shape == (len(pool), 4) and np.allclose(probs.sum(axis=1), 1.0)
    assert (probs.argmax(axis=1) == y[pool]).mean() > 0.95


def test_without_a_pool_or_with_weight_zero_it_is_plain_logistic_regression():
    x, y = blobs(20)
    plain = FastLearner(x, 4, config=ActiveConfig(pseudo_weight=0.0)).fit(x[:40], y[:40], x[40:])
    assert plain.pseudo_labels == 0 and plain.final is plain.model
    no_pool = FastLearner(x, 4).fit(x, y)
    assert no_pool.pseudo_labels == 0


def test_refit_after_a_new_batch_keeps_all_classes_even_unlabeled_ones():
    x, y = blobs(30, k=5)
    learner = FastLearner(x, 5)
    first = np.concatenate([np.flatnonzero(y == c)[:3] for c in range(3)])  # classes 3, 4 not labeled yet
    learner.fit(x[first], y[first], x[np.setdiff1d(np.arange(len(y)), first)])
    assert learner.predict_proba(x).shape == (len(y), 5)
    more = np.concatenate([first, np.flatnonzero(y == 3)[:2], np.flatnonzero(y == 4)[:2]])
    learner.fit(x[more], y[more], x[np.setdiff1d(np.arange(len(y)), more)])
    assert set(learner.predict_proba(x).argmax(axis=1)) >= {3, 4}


def test_weighted_fit_matches_repeating_rows():
    x, y = blobs(10, k=3, d=5)
    weights = np.where(np.arange(len(y)) % 2 == 0, 2.0, 1.0)
    weighted = SoftmaxRegression(5, 3, C=1.0).fit(x, y, weights)
    repeated = np.concatenate([np.arange(len(y)), np.flatnonzero(weights == 2.0)])
    copied = SoftmaxRegression(5, 3, C=1.0).fit(x[repeated], y[repeated])
    assert np.allclose(weighted.predict_proba(x), copied.predict_proba(x), atol=1e-3)


def test_clear_errors():
    x, y = blobs(5)
    with pytest.raises(EmptyDataError, match="at least two"):
        FastLearner(x, 4).fit(x[:5], np.zeros(5, dtype=int))
    with pytest.raises(DataError, match="one label per row"):
        FastLearner(x, 4).fit(x[:5], y[:4])
    with pytest.raises(DataError, match="class indices"):
        FastLearner(x, 4).fit(x[:5], np.array([0, 1, 2, 3, 7]))
    with pytest.raises(EmptyDataError, match="at least two"):
        FastLearner(x, 1)
    with pytest.raises(ConfigError, match="pseudo_weight"):
        ActiveConfig(pseudo_weight=2.0)
    with pytest.raises(ConfigError, match="scorer"):
        ActiveConfig(scorer="lora")
