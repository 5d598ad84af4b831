"""Out-of-sample probabilities: shapes, out-of-sample-ness, model choice and fold fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

from studio.errors import DataError, EmptyDataError
from studio.probabilities import (CANDIDATES, ProbabilityInputs, choose_model, log_loss, make_folds,
                                  out_of_sample_pred_probs)


def _data(n_per: int = 40, k: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per)
    emb = rng.normal(size=(k, 16))[y] * 2 + rng.normal(size=(len(y), 16))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    words = ["alpha beta", "gamma delta", "epsilon zeta", "eta theta"]
    texts = [f"{words[c]} item {i % 7}" for i, c in enumerate(y)]
    return texts, y, emb


def test_all_candidates_give_normalised_out_of_sample_probs() -> None:
    texts, y, emb = _data()
    res = out_of_sample_pred_probs(texts, y, n_classes=3, embeddings=emb,
                                   candidates=["embedding_lr", "tfidf_lr", "tfidf_nb", "embedding_knn", "ensemble"])
    assert set(res.log_loss) == {"embedding_lr", "tfidf_lr", "tfidf_nb", "embedding_knn", "ensemble"}
    assert res.model in (min(res.log_loss, key=res.log_loss.get), "ensemble")
    for p in res.candidate_probs.values():
        assert p.shape == (len(y), 3)
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-9)
        assert (p.argmax(1) == y).mean() > 0.9
    members = ("embedding_lr", "tfidf_lr", "tfidf_nb", "embedding_knn")
    np.testing.assert_allclose(res.candidate_probs["ensemble"], np.mean([res.candidate_probs[c] for c in members], 0))
    assert res.folds == 5 and res.warnings == []


def test_probabilities_are_out_of_sample() -> None:
    # Random labels carry no signal: an in-sample model would still fit them, an out-of-sample one cannot.
    texts, _, emb = _data()
    y = np.random.default_rng(3).integers(0, 3, size=len(texts))
    res = out_of_sample_pred_probs(texts, y, n_classes=3, embeddings=emb, candidates=["embedding_lr"], lr_c=100.0)
    assert (res.pred_probs.argmax(1) == y).mean() < 0.55


def test_external_candidate_wins_when_better() -> None:
    texts, y, emb = _data()
    perfect = np.full((len(y), 3), 0.001)
    perfect[np.arange(len(y)), y] = 0.998
    # (the texts name their class, so a text model would be as good as `perfect`: embeddings only here)
    res = out_of_sample_pred_probs(texts, y, n_classes=3, embeddings=emb, external=perfect,
                                   candidates=["embedding_lr", "embedding_knn", "ensemble"])
    assert res.model == "external"
    with pytest.raises(DataError, match="shape"):
        out_of_sample_pred_probs(texts, y, n_classes=3, embeddings=emb, external=perfect[:, :2])


def test_ensemble_is_kept_unless_the_external_model_is_clearly_better() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=400)
    good = np.full((400, 3), 0.2)
    good[np.arange(400), y] = 0.6
    wobbly = np.full((400, 3), 0.0)
    wobbly[np.arange(400), y] = rng.uniform(0.3, 0.9, size=400)  # as good on average, noisier per task
    wobbly[wobbly == 0] = ((1 - wobbly.max(1)) / 2).repeat(2)
    probs = {"a": good, "b": wobbly, "ensemble": (good + wobbly) / 2}
    assert log_loss(y, probs["ensemble"]) > log_loss(y, good)  # a single candidate is (slightly) lower ...
    assert choose_model(y, probs) == "ensemble"  # ... but not by more than noise: the ensemble is kept
    # A sharper built-in candidate does not replace it (log-loss on the given labels rewards sharpness) ...
    sharp = np.full((400, 3), 0.01)
    sharp[np.arange(400), y] = 0.98
    probs = {"a": good, "sharp": sharp, "ensemble": (good + sharp) / 2}
    assert choose_model(y, probs) == "ensemble"
    # ... a clearly better fine-tuned model does, and without an ensemble the lowest log-loss wins.
    assert choose_model(y, {"a": good, "external": sharp, "ensemble": (good + sharp) / 2}) == "external"
    assert choose_model(y, {"a": good, "external": wobbly, "ensemble": (good + wobbly) / 2}) == "ensemble"
    assert choose_model(y, {"a": good, "sharp": sharp}) == "sharp"


def test_small_class_reduces_folds_with_a_warning() -> None:
    texts, y, emb = _data()
    y = y.copy()
    y[:3] = 3  # a class with 3 members
    res = out_of_sample_pred_probs(texts, y, n_classes=4, embeddings=emb, folds=5)
    assert res.folds == 3
    assert any("fewer than folds=5" in w for w in res.warnings)
    y[0] = 4  # now a class with a single member: it cannot be held out and seen at once
    folds, warnings = make_folds(y, folds=5, seed=0)
    assert len(folds) == 2 and any("fewer than 2 examples" in w for w in warnings)
    res = out_of_sample_pred_probs(texts, y, n_classes=5, embeddings=emb)
    assert np.isfinite(res.pred_probs).all()


def test_errors() -> None:
    texts, y, emb = _data()
    with pytest.raises(EmptyDataError):
        out_of_sample_pred_probs([], np.array([], dtype=int), n_classes=3, embeddings=emb[:0])
    with pytest.raises(EmptyDataError, match="single class"):
        out_of_sample_pred_probs(texts, np.zeros(len(y), int), n_classes=3, embeddings=emb)
    with pytest.raises(DataError, match="one row per text"):
        out_of_sample_pred_probs(texts, y, n_classes=3, embeddings=emb[:5])
    with pytest.raises(DataError, match="known models"):
        out_of_sample_pred_probs(texts, y, n_classes=3, embeddings=emb, candidates=["svm"])
    with pytest.raises(DataError, match="dtype"):
        out_of_sample_pred_probs(texts, np.array(["a"] * len(y)), n_classes=3, embeddings=emb)


@pytest.mark.parametrize("name", ["embedding_lr", "tfidf_lr", "tfidf_nb", "embedding_knn"])
def test_excluded_rows_are_scored_but_never_learned_from(name: str) -> None:
    # Whatever labels the excluded rows carry, every row's probabilities stay the same.
    texts, y, emb = _data()
    excluded = np.zeros(len(y), bool)
    excluded[::4] = True
    scrambled = y.copy()
    scrambled[excluded] = (y[excluded] + 1) % 3
    folds, _ = make_folds(y, folds=5, seed=0)
    folds = [(train[~excluded[train]], test) for train, test in folds]
    out = []
    for labels in (y, scrambled):
        inp = ProbabilityInputs(texts=texts, labels=labels, n_classes=3, embeddings=emb, folds=folds, seed=0,
                                lr_c=1.0, lr_max_iter=100, knn_k=5, knn=None, tick=lambda: None, excluded=excluded)
        out.append(CANDIDATES[name](inp))
    np.testing.assert_allclose(out[0], out[1])
    assert out[1].shape == (len(y), 3)


def test_exclude_leaves_the_labels_out_of_training_and_keeps_every_row() -> None:
    texts, y, emb = _data()
    wrong = y.copy()
    wrong[:8] = 1  # eight of class 0 labelled 1
    excluded = np.zeros(len(y), bool)
    excluded[:8] = True
    kept = out_of_sample_pred_probs(texts, wrong, n_classes=3, embeddings=emb, exclude=excluded,
                                    candidates=["embedding_knn"], knn_k=5)
    assert kept.pred_probs.shape == (len(y), 3)
    assert (kept.pred_probs[:8].argmax(1) == 0).all()
    with pytest.raises(EmptyDataError, match="remain after excluding"):
        out_of_sample_pred_probs(texts, y, n_classes=3, embeddings=emb, exclude=y != 0)
    with pytest.raises(DataError, match="one flag per label"):
        out_of_sample_pred_probs(texts, y, n_classes=3, embeddings=emb, exclude=excluded[:5])


def test_log_loss_and_registry() -> None:
    assert {"embedding_lr", "tfidf_lr", "embedding_knn", "ensemble"} <= set(CANDIDATES)
    p = np.array([[0.5, 0.5], [0.9, 0.1]])
    assert log_loss(np.array([0, 0]), p) == pytest.approx(-(np.log(0.5) + np.log(0.9)) / 2)


@pytest.mark.slow
def test_real_minilm_embeddings_separate_banking_intents(tmp_path) -> None:
    """The one test with the real encoder: a tiny banking-like set is separable out of sample."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from studio.embeddings import encode

    texts = ["my card was declined", "the card got declined at the shop", "why was my card refused",
             "card payment declined again", "shop refused my card today", "declined card payment",
             "how do I transfer money", "send money to a friend", "make a bank transfer",
             "transfer funds to another account", "wire money abroad", "move money between accounts"]
    y = np.array([0] * 6 + [1] * 6)
    emb = encode(texts, cache_dir=tmp_path)
    res = out_of_sample_pred_probs(texts, y, n_classes=2, embeddings=emb, candidates=["embedding_knn"],
                                   folds=3, knn_k=3)
    assert (res.pred_probs.argmax(1) == y).mean() >= 0.9
