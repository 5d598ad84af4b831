"""training/objective.py: each classification objective's targets, probabilities, decisions, checks and head."""

import numpy as np
import pandas as pd
import pytest

from studio.errors import DataError, TrainingError
from training.head import fit_linear_head
from training.metrics import full_report, summary_metrics
from training.objective import MultiLabel, SingleLabel, objective_for, task_of


def test_objectives_are_picked_by_task_kind_and_other_kinds_are_refused():
    assert isinstance(objective_for("single_label"), SingleLabel)
    assert isinstance(objective_for("multi_label"), MultiLabel)
    for task in ("spans", "generation"):
        with pytest.raises(TrainingError, match="own trainer"):
            objective_for(task)


def test_runs_and_manifests_written_before_task_kinds_still_name_their_task():
    assert task_of({"multi_label": True}) == "multi_label"
    assert task_of({"multi_label": False}) == "single_label"
    assert task_of({}) == "single_label"
    assert task_of({"task": "spans", "multi_label": False}) == "spans"


def test_single_label_reads_indices_softmaxes_and_takes_the_argmax():
    o = SingleLabel()
    y = o.targets(pd.DataFrame({"label": [0, 2, 1]}), 3)
    assert y.dtype == np.int64 and y.tolist() == [0, 2, 1]
    probs = o.probs(np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0], [0.0, 1.0, 0.0]]))
    assert np.allclose(probs.sum(axis=1), 1.0) and o.decide(probs).tolist() == [0, 2, 1]
    assert o.confusion(o.truth(y), o.decide(probs), 3) == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    with pytest.raises(DataError, match=r"validation split has label 3, expected an index in \[0, 2\]"):
        o.check_targets(np.array([0, 3]), 3, "validation")


def test_multi_label_reads_rows_sigmoids_and_thresholds_each_class():
    o = MultiLabel()
    y = o.targets(pd.DataFrame({"labels": [[1, 0, 1], [0, 0, 0]]}), 3)
    assert y.shape == (2, 3) and o.classes_present(y) == 2
    probs = o.probs(np.array([[3.0, -3.0, 0.5], [-1.0, -2.0, -3.0]]))
    assert o.decide(probs).tolist() == [[1, 0, 1], [0, 0, 0]]  # rows need not sum to one; none is fine
    assert o.confusion(o.truth(y), o.decide(probs), 3)[0] == [[1, 0], [0, 1]]
    with pytest.raises(DataError, match="rows have length"):
        o.check_targets(np.zeros((2, 2)), 3, "train")
    assert o.targets(pd.DataFrame({"labels": []}), 3).shape == (0, 3)


def test_the_multi_label_head_predicts_a_class_nobody_has_at_its_base_rate():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    Y = np.zeros((40, 3))
    Y[:, 0] = X[:, 0] > 0
    Y[:, 1] = X[:, 1] > 0  # class 2: never present
    head = fit_linear_head(X, Y, num_classes=3, objective=MultiLabel())
    probs = head.predict_proba(X)
    assert probs.shape == (40, 3) and probs[:, 2].max() < 1e-3
    assert summary_metrics(Y, probs, objective=MultiLabel())["accuracy"] > 0.9
    report = full_report(Y, probs, class_names=["a", "b", "c"], objective=MultiLabel())
    assert report["per_class"]["c"]["support"] == 0 and len(report["confusion_matrix"]) == 3


def test_the_single_label_head_has_a_row_per_class_even_for_absent_classes():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 4))
    y = (X[:, 0] > 0).astype(int) * 2  # classes 0 and 2 only
    head = fit_linear_head(X, y, num_classes=3)
    probs = head.predict_proba(X)
    assert probs.shape == (30, 3) and probs[:, 1].max() < 1e-6
    assert (probs.argmax(1) == y).mean() > 0.9
