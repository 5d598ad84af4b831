"""Consensus: simulated annotators of known accuracy, and Krippendorff's alpha on textbook data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from studio.consensus import agreement_table, krippendorff_alpha, percent_agreement, run_consensus
from studio.errors import DataError, EmptyDataError

K = 4
ACCURACY = {"ann_a": 0.9, "ann_b": 0.75, "ann_c": 0.6, "ann_d": 0.45}


@pytest.fixture(scope="module")
def simulated() -> dict:
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, K, size=n)
    emb = rng.normal(size=(K, 24))[y] * 1.5 + rng.normal(size=(n, 24))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    table = np.full((n, len(ACCURACY)), np.nan)
    for i in range(n):
        for j in rng.choice(len(ACCURACY), size=3, replace=False):
            right = rng.random() < list(ACCURACY.values())[j]
            table[i, j] = y[i] if right else (y[i] + 1) % K  # errors go to the "similar" next class
    table[0, :] = [y[0], np.nan, np.nan, np.nan]  # a task with a single annotator
    frame = pd.DataFrame(table, columns=list(ACCURACY))
    return {"y": y, "emb": emb, "frame": frame, "names": [f"c{k}" for k in range(K)]}


def test_consensus_beats_majority_and_ranks_annotators(simulated: dict) -> None:
    res = run_consensus(simulated["frame"], simulated["names"], embeddings=simulated["emb"])
    y = simulated["y"]
    majority = (res.tasks["majority_label"].to_numpy() == y).mean()
    consensus = (res.tasks["consensus_label"].to_numpy() == y).mean()
    assert consensus > majority + 0.05, (majority, consensus)
    assert list(res.annotators["annotator"]) == list(ACCURACY)  # best first, exactly the true order
    est = res.annotators.set_index("annotator")["annotator_quality"]
    assert spearmanr([ACCURACY[a] for a in est.index], est).statistic == pytest.approx(1.0)
    assert res.tasks.loc[0, "num_annotations"] == 1 and res.tasks.loc[0, "consensus"] in simulated["names"]
    assert res.tasks["consensus_quality"].between(0, 1).all()
    # Confusion of the weakest annotator: errors sit one class to the right of the consensus.
    conf = res.confusion_for("ann_d")
    assert conf.loc["c0", "c1"] > conf.loc["c0", "c2"] + conf.loc["c0", "c3"]
    assert set(res.agreement.index) == set(simulated["names"]) | {"overall"}


def test_all_annotators_agreeing(simulated: dict) -> None:
    y = simulated["y"]
    frame = pd.DataFrame({"a": y, "b": y, "c": y}).astype(float)
    res = run_consensus(frame, simulated["names"], embeddings=simulated["emb"])
    assert (res.tasks["consensus_label"].to_numpy() == y).all()
    assert res.agreement.loc["overall", "krippendorff_alpha"] == pytest.approx(1.0)
    assert res.agreement.loc["overall", "percent_agreement"] == pytest.approx(1.0)


def test_annotator_with_a_single_label_and_empty_annotator(simulated: dict) -> None:
    frame = simulated["frame"].copy()
    frame["rare"] = np.nan
    frame.loc[5, "rare"] = simulated["y"][5]
    frame["absent"] = np.nan
    res = run_consensus(frame, simulated["names"], embeddings=simulated["emb"])
    assert "rare" in set(res.annotators["annotator"]) and "absent" not in set(res.annotators["annotator"])
    assert any("absent" in w for w in res.warnings)


def test_krippendorff_textbook_example() -> None:
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", nominal example: alpha = 0.743.
    nan = np.nan
    coders = np.array([
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ])
    units = coders.T - 1  # units x coders, classes 0..4
    assert krippendorff_alpha(units) == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(np.array([[0, 0], [1, 1], [2, 2.0]])) == 1.0
    assert krippendorff_alpha(np.array([[0, 1], [1, 0.0]])) < 0  # systematic disagreement
    assert percent_agreement(np.array([[0, 0, 1], [1, 1, 1.0]])) == pytest.approx((2 + 6) / 12)
    table = agreement_table(np.array([[0, 0], [1, 1.0]]), ["x", "y"])
    assert table.loc["x", "percent_agreement"] == 1.0


def test_errors(simulated: dict) -> None:
    with pytest.raises(EmptyDataError, match="single annotator"):
        run_consensus(pd.DataFrame({"a": [0.0, 1.0], "b": [np.nan, np.nan]}), ["x", "y"],
                      pred_probs=np.full((2, 2), 0.5))
    with pytest.raises(EmptyDataError):
        run_consensus(pd.DataFrame({"a": [np.nan], "b": [np.nan]}), ["x", "y"], pred_probs=np.full((1, 2), 0.5))
    with pytest.raises(DataError, match="no label at all"):
        run_consensus(pd.DataFrame({"a": [0.0, np.nan, 1], "b": [0.0, np.nan, 1]}), ["x", "y"],
                      pred_probs=np.full((3, 2), 0.5))
    with pytest.raises(DataError, match="outside"):
        run_consensus(pd.DataFrame({"a": [0.0, 7.0], "b": [0.0, 1]}), ["x", "y"], pred_probs=np.full((2, 2), 0.5))
    with pytest.raises(DataError, match="neither"):
        run_consensus(simulated["frame"], simulated["names"])


def test_two_annotators_who_always_disagree_are_ties_not_one_right_and_one_wrong(simulated: dict) -> None:
    y = simulated["y"]
    frame = pd.DataFrame({"ann": y, "bob": (y + 1) % K}).astype(float)
    res = run_consensus(frame, simulated["names"], embeddings=simulated["emb"])
    assert res.tasks["tie"].all()
    assert res.annotators["annotator_quality"].isna().all()  # neither is inferred better from ties
    assert any("ties" in w and "not estimated" in w for w in res.warnings)

    # With a third annotator on half of the tasks, the ties are the other half and quality comes from the rest.
    third = frame.assign(cy=np.where(np.arange(len(y)) % 2 == 0, y, np.nan))
    res = run_consensus(third, simulated["names"], embeddings=simulated["emb"])
    assert res.tasks["tie"].sum() == len(y) // 2
    quality = res.annotators.set_index("annotator")["annotator_quality"]
    assert quality.notna().all() and quality["ann"] > quality["bob"]


def test_annotators_against_the_model_on_tasks_labeled_alone() -> None:
    from studio.consensus import annotators_against_model

    rows = []
    for i in range(40):
        weak = i % 2 == 0
        rows.append({"task_id": i, "issue_type": "label_issue", "annotators": ["weak" if weak else "good"],
                     "score": 0.2 if weak and i % 4 == 0 else 0.9, "is_issue": weak and i % 4 == 0})
    rows.append({"task_id": 99, "issue_type": "label_issue", "annotators": ["weak", "good"], "score": 0.1,
                 "is_issue": True})  # two annotators: CROWDLAB's job, not counted here
    table = annotators_against_model(pd.DataFrame(rows))
    assert table["annotator"].tolist() == ["weak", "good"] and table["tasks"].tolist() == [20, 20]
    weak = table.set_index("annotator").loc["weak"]
    assert weak["flagged"] == pytest.approx(0.5) and weak["against_others"] == pytest.approx(0.5)
    assert annotators_against_model(pd.DataFrame(rows[-1:])).empty
