"""Label-quality checks on seeded synthetic data with planted label errors, duplicates and an outlier."""

from __future__ import annotations

import numpy as np
import pytest

from studio.checks import ISSUE_COLUMNS, available_checks, get_check, knn_graph, near_duplicate_groups
from studio.errors import ConfigError, DataError, EmptyDataError
from studio.quality import QualityConfig, run_quality

K, PER_CLASS, D = 4, 60, 32
WORDS = [["card", "visa", "plastic"], ["transfer", "wire", "send"], ["pin", "code", "unlock"],
         ["refund", "return", "money back"]]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def planted() -> dict:
    """4 well separated clusters; 10% of labels flipped; 2 exact + 1 near duplicate; 1 far outlier."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(K, D)) * 3
    y = np.repeat(np.arange(K), PER_CLASS)
    emb = centres[y] + rng.normal(size=(len(y), D))
    texts = [f"{rng.choice(WORDS[c])} question number {i}" for i, c in enumerate(y)]
    noisy = y.copy()
    flipped = rng.choice(len(y), size=len(y) // 10, replace=False)
    noisy[flipped] = (y[flipped] + rng.integers(1, K, size=len(flipped))) % K
    # Exact duplicates (case/whitespace differ) of row 0; a near duplicate of row 5 (tiny embedding shift).
    texts[1], texts[2] = "  " + texts[0].upper() + " ", texts[0].replace(" ", "   ")
    emb[1] = emb[0] + 0.01
    emb[2] = emb[0] - 0.01
    emb[6] = emb[5] + 1e-3 * rng.normal(size=D)
    outlier = 7
    emb[outlier] = rng.normal(size=D) * 0.1 + 40 * np.eye(D)[D - 1]
    return {"texts": texts, "y": y, "noisy": noisy, "emb": _unit(emb), "flipped": np.setdiff1d(flipped, [outlier]),
            "outlier": outlier, "names": [f"class_{c}" for c in range(K)]}


@pytest.fixture(scope="module")
def report(planted: dict):
    return run_quality(planted["texts"], planted["noisy"], planted["names"], embeddings=planted["emb"],
                       task_ids=np.arange(len(planted["y"])) + 1000)


def test_registry_lists_every_check() -> None:
    checks = available_checks()
    assert list(checks)[:4] == ["label_issue", "outlier", "near_duplicate", "class_imbalance"]
    assert all(isinstance(d, str) and d for d in checks.values())
    with pytest.raises(ConfigError, match="Did you mean 'outlier'"):
        get_check("outliers")


def test_issue_table_has_stable_columns(report, planted: dict) -> None:
    assert list(report.issues.columns) == ISSUE_COLUMNS
    assert report.issues["score"].between(0, 1).all()
    assert set(report.issues["issue_type"]) >= {"label_issue", "outlier", "near_duplicate"}
    assert report.issues["task_id"].min() >= 1000
    assert report.pred_probs.shape == (len(planted["y"]), K)
    np.testing.assert_allclose(report.pred_probs.sum(axis=1), 1.0, atol=1e-6)
    assert set(report.model_scores) == {"embedding_lr", "embedding_knn", "tfidf_nb", "ensemble"}
    assert report.model == min(report.model_scores, key=report.model_scores.get)


def test_planted_label_errors_are_found_with_the_true_label_suggested(report, planted: dict) -> None:
    flagged = report.flagged("label_issue")
    found = set(flagged["task_index"])
    recall = len(found & set(planted["flipped"])) / len(planted["flipped"])
    precision = len(found & set(planted["flipped"])) / max(len(found), 1)
    assert recall >= 0.9 and precision >= 0.8, (recall, precision)
    hits = flagged[flagged["task_index"].isin(planted["flipped"])]
    true = np.asarray(planted["names"])[planted["y"][hits["task_index"]]]
    assert (hits["suggested_label"].to_numpy() == true).mean() >= 0.9
    # confidence = the model's probability of the suggestion, there exactly when there is a suggestion.
    labels = report.issues[report.issues["issue_type"] == "label_issue"]
    has = labels["suggested_label"] != ""
    assert labels.loc[has, "confidence"].between(0, 1).all() and labels.loc[~has, "confidence"].isna().all()
    idx = labels.loc[has, "task_index"].to_numpy()
    sugg = labels.loc[has, "suggested_label"].map({n: i for i, n in enumerate(planted["names"])}).to_numpy()
    np.testing.assert_allclose(labels.loc[has, "confidence"], report.pred_probs[idx, sugg])
    # Ranking: planted errors score lower than clean rows.
    rows = report.issues[report.issues["issue_type"] == "label_issue"].set_index("task_index")["score"]
    assert rows[planted["flipped"]].mean() < rows.drop(planted["flipped"]).mean() - 0.3


def test_outlier_is_ranked_first(report, planted: dict) -> None:
    outliers = report.flagged("outlier")
    assert outliers.iloc[0]["task_index"] == planted["outlier"]
    assert len(outliers) <= 5  # the fence flags the planted one, not a fixed share


def test_duplicates_are_grouped(report, planted: dict) -> None:
    dup = report.flagged("near_duplicate")
    groups = dup.groupby("group_id")["task_index"].apply(set).tolist()
    assert {0, 1, 2} in groups and {5, 6} in groups
    assert dup.set_index("task_index").loc[1, "score"] == 0.0  # exact after normalising


def test_near_duplicate_groups_function(planted: dict) -> None:
    groups = near_duplicate_groups(planted["texts"], planted["emb"], threshold=0.99)
    assert groups.shape == (len(planted["texts"]),)
    assert groups[0] == groups[1] == groups[2] and groups[5] == groups[6] and groups[3] != groups[0]
    assert len(np.unique(groups)) == len(groups) - 3
    exact_only = near_duplicate_groups(["a b", "A  B", "c"], None)
    assert exact_only.tolist() == [0, 0, 1]
    with pytest.raises(DataError, match="threshold"):
        near_duplicate_groups(["a"], None, threshold=1.5)


def test_class_summary_and_confusion(report, planted: dict) -> None:
    summary = report.class_summary.set_index("class")
    assert summary["count"].sum() == len(planted["y"])
    assert set(summary.columns) >= {"issue_rate", "mean_label_quality", "most_confused_with", "is_rare"}
    assert report.confusion.shape == (K, K)
    assert report.confusion.to_numpy().sum() == len(planted["y"])


def test_rare_class_is_flagged(planted: dict) -> None:
    labels = planted["y"].copy()
    labels[:5] = K  # a fifth class with 5 examples: rare, and smaller than the 5 folds
    names = planted["names"] + ["tiny"]
    rep = run_quality(planted["texts"], labels, names, embeddings=planted["emb"],
                      checks=["class_imbalance"])
    assert set(rep.flagged("class_imbalance")["task_index"]) == set(range(5))
    assert bool(rep.class_summary.set_index("class").loc["tiny", "is_rare"])


def test_class_smaller_than_folds_warns_instead_of_crashing(planted: dict) -> None:
    labels = planted["y"].copy()
    labels[:2] = K
    rep = run_quality(planted["texts"], labels, planted["names"] + ["tiny"], embeddings=planted["emb"],
                      checks=["label_issue"])
    assert any("fewer than folds" in w for w in rep.warnings)
    labels[1] = 0  # one example left: fewer than even the 2 folds used, and named in the warning
    rep = run_quality(planted["texts"], labels, planted["names"] + ["tiny"], embeddings=planted["emb"],
                      checks=["label_issue"])
    assert any("fewer than 2 examples ('tiny')" in w for w in rep.warnings), rep.warnings
    assert len(rep.issues) == len(labels)


@pytest.mark.parametrize("labels, error, match", [
    ([], EmptyDataError, "empty"),
    ([1] * 10, EmptyDataError, "single class"),
    ([0, 1] * 4, DataError, "8 entries but there are 10"),
    ([0, 1, 2, 3, 9, 0, 1, 2, 3, 0], DataError, "outside"),
    ([0.0, 1.0, np.nan, 1, 0, 1, 0, 1, 0, 1], DataError, "NaN"),
])
def test_bad_inputs_raise_clear_errors(labels: list, error: type, match: str) -> None:
    n = 0 if labels == [] else 10
    texts = [f"t{i}" for i in range(n)]
    emb = _unit(np.random.default_rng(1).normal(size=(max(n, 1), 8)))[:n]
    with pytest.raises(error, match=match):
        run_quality(texts, np.asarray(labels), [f"c{i}" for i in range(4)], embeddings=emb)


def test_mismatched_embeddings_and_unknown_check(planted: dict) -> None:
    with pytest.raises(DataError, match="expected"):
        run_quality(planted["texts"], planted["noisy"], planted["names"], embeddings=planted["emb"][:10])
    with pytest.raises(ConfigError, match="does not exist"):
        run_quality(planted["texts"], planted["noisy"], planted["names"], embeddings=planted["emb"],
                    checks=["nope"])


def test_config_validates_and_round_trips() -> None:
    cfg = QualityConfig.from_dict({"folds": "3", "candidates": "embedding_knn,embedding_lr"})
    assert cfg.folds == 3 and cfg.candidates == ["embedding_knn", "embedding_lr"]
    assert QualityConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="folds"):
        QualityConfig(folds=1)
    with pytest.raises(ConfigError, match="candidates"):
        QualityConfig(candidates=["bert"])
    with pytest.raises(ConfigError, match="Did you mean 'folds'"):
        QualityConfig.from_dict({"fold": 3})


def test_external_pred_probs_and_progress(planted: dict) -> None:
    seen: list[tuple[int, int]] = []
    perfect = np.full((len(planted["y"]), K), 0.01)
    perfect[np.arange(len(planted["y"])), planted["y"]] = 0.97
    rep = run_quality(planted["texts"], planted["noisy"], planted["names"], embeddings=planted["emb"],
                      pred_probs=perfect, checks=["label_issue"], progress=lambda d, t: seen.append((d, t)))
    assert "external" in rep.model_scores
    assert seen[-1][0] == seen[-1][1]
    knn = knn_graph(planted["emb"], k=3)
    assert knn.indices.shape == (len(planted["y"]), 3) and (knn.indices != np.arange(len(planted["y"]))[:, None]).all()


def test_flagged_is_the_flagged_rows_lowest_score_first(report) -> None:
    flagged = report.flagged()
    assert len(flagged) == int(report.issues["is_issue"].sum()) > 0 and flagged["is_issue"].all()
    assert flagged["score"].is_monotonic_increasing
    labels = report.flagged("label_issue")
    assert (labels["issue_type"] == "label_issue").all() and 0 < len(labels) <= len(flagged)


def test_refit_round_is_reported_and_can_be_switched_off(planted: dict) -> None:
    args = (planted["texts"], planted["noisy"], planted["names"])
    refit = run_quality(*args, embeddings=planted["emb"], checks=["label_issue"])
    plain = run_quality(*args, embeddings=planted["emb"], checks=["label_issue"], config=QualityConfig(refit_rounds=0))
    assert refit.refit and not plain.refit
    assert refit.model_scores == plain.model_scores  # candidates are chosen on the given labels either way
    flipped = set(planted["flipped"].tolist())
    for rep in (refit, plain):
        assert len(flipped & set(rep.flagged("label_issue")["task_index"])) >= 0.75 * len(flipped)
    with pytest.raises(ConfigError, match="refit_rounds"):
        QualityConfig(refit_rounds=-1)


def test_refit_flags_are_counted_per_class_not_taken_by_the_least_certain_class() -> None:
    from studio.checks.label_issues import flag_label_issues

    labels = np.array([0] * 6 + [1] * 6)
    # Class 1's examples all score low (the model is merely unsure of it); class 0 has one clear error.
    scores = np.array([0.9, 0.9, 0.05, 0.9, 0.9, 0.9, 0.1, 0.2, 0.15, 0.3, 0.25, 0.12])
    probs = np.full((12, 2), 0.5)
    per_class = flag_label_issues(labels, probs, scores, filter_by="prune_by_noise_rate", count=np.array([1, 1]))
    assert list(np.flatnonzero(per_class)) == [2, 6]
    overall = flag_label_issues(labels, probs, scores, filter_by="prune_by_noise_rate", count=2)
    assert list(np.flatnonzero(overall)) == [2, 6]
    overall = flag_label_issues(labels, probs, scores, filter_by="prune_by_noise_rate", count=3)
    assert 11 in np.flatnonzero(overall)  # a global count hands the next flag to the unsure class


def test_a_class_taking_far_more_than_its_share_of_the_flags_is_named() -> None:
    import pandas as pd

    from studio.quality import _flag_share_warnings

    summary = pd.DataFrame({"class": ["a", "b"], "count": [100, 900], "share": [0.1, 0.9],
                            "label_issues": [30, 20], "flag_share": [0.6, 0.4]})
    (warning,) = _flag_share_warnings(summary, 50)
    assert "'a' holds 60% of the flagged labels but 10% of the labels" in warning
    assert _flag_share_warnings(summary.assign(flag_share=[0.2, 0.8]), 50) == []
