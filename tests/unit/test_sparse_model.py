"""The sparse text view: TF-IDF features, the cross-validated saga logistic regression, the TF-IDF kNN vote and
the quality pass without embeddings (long documents)."""

from __future__ import annotations

import time

import numpy as np

from studio.probabilities import make_folds, out_of_sample_pred_probs
from studio.quality import QualityConfig, dense_view, run_quality
from studio.sparse_model import cross_val_sparse_lr, text_vectors, tfidf_features

TOPICS = {
    0: "bank rate interest loan mortgage inflation market shares profit",
    1: "football match goal striker league cup referee season coach",
    2: "film actor director award cinema festival premiere script studio",
}


def _docs(n_per: int = 30, words: int = 160, seed: int = 0):
    """Long documents: each mostly its topic's words, some words of the others."""
    rng = np.random.default_rng(seed)
    vocab = {k: v.split() for k, v in TOPICS.items()}
    filler = "the a of and to in that it was for on".split()
    texts, y = [], []
    for k in TOPICS:
        for _ in range(n_per):
            own = rng.choice(vocab[k], size=words // 2)
            other = rng.choice(vocab[(k + 1) % 3] + vocab[(k + 2) % 3], size=words // 8)
            body = list(own) + list(other) + list(rng.choice(filler, size=words - len(own) - len(other)))
            rng.shuffle(body)
            texts.append(" ".join(body))
            y.append(k)
    return texts, np.array(y)


def test_tfidf_features_are_unit_rows_of_words_and_characters() -> None:
    texts, _ = _docs(n_per=5)
    words, both = tfidf_features(texts, chars=False), tfidf_features(texts)
    assert both.shape[0] == len(texts) and both.shape[1] > words.shape[1]
    np.testing.assert_allclose(np.sqrt(both.multiply(both).sum(axis=1)).A.ravel(), 1.0, atol=1e-5)
    # Odd data where no n-gram occurs twice still gives features (characters 1-3).
    assert tfidf_features(["qz", "xj"]).shape[0] == 2


def test_sparse_lr_is_out_of_sample_and_learns_the_topics() -> None:
    texts, y = _docs()
    folds, _ = make_folds(y, folds=5, seed=0)
    x = tfidf_features(texts)
    probs = cross_val_sparse_lr(x, y, 3, folds)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    assert (probs.argmax(1) == y).mean() > 0.95
    shuffled = np.random.default_rng(1).permutation(y)  # labels without signal cannot be learned out of sample
    assert (cross_val_sparse_lr(x, shuffled, 3, folds).argmax(1) == shuffled).mean() < 0.6


def test_sparse_lr_is_fast_on_thousands_of_documents() -> None:
    texts, y = _docs(n_per=700, words=120)
    start = time.perf_counter()
    out_of_sample_pred_probs(texts, y, n_classes=3, candidates=["tfidf_lr"])
    assert time.perf_counter() - start < 60  # ~5 s on 2 busy cores; lbfgs on the same matrix took minutes


def test_flipped_long_documents_are_found_without_embeddings() -> None:
    texts, y = _docs()
    noisy = y.copy()
    flipped = np.arange(0, len(y), 9)
    noisy[flipped] = (y[flipped] + 1) % 3
    res = out_of_sample_pred_probs(texts, noisy, n_classes=3, candidates=["tfidf_lr", "tfidf_nb", "tfidf_knn",
                                                                            "ensemble"])
    assert set(res.log_loss) == {"tfidf_lr", "tfidf_nb", "tfidf_knn", "ensemble"}
    use, why = dense_view(texts)
    assert not use and "160 words" in why
    report = run_quality(texts, noisy, ["bank", "sport", "film"], embeddings=None, config=QualityConfig())
    assert report.view == {"embeddings": False, "candidates": QualityConfig().sparse_candidates}
    assert report.choice["chosen"] == report.model and "rule" in report.choice
    assert report.texts["median_words"] == 160
    flagged = set(report.flagged("label_issue")["task_index"])
    assert flagged >= set(flipped) and len(flagged) <= len(flipped) + 3
    assert {"share", "flag_share"} <= set(report.class_summary.columns)
    np.testing.assert_allclose(report.class_summary["flag_share"].sum(), 1.0)


def test_text_vectors_ignore_mail_headers() -> None:
    a = "From: alice@x.org\nSubject: Re: the meeting\nOrganization: X\n\nThe budget is approved for next year."
    b = "From: alice@x.org\nSubject: Re: the meeting\nOrganization: X\n\nMy cat refuses to eat fish on Mondays."
    x = text_vectors([a, b, "The budget is approved for next year, all of it."])
    sims = (x @ x.T).toarray()
    assert sims[0, 1] < 0.05 < sims[0, 2]
