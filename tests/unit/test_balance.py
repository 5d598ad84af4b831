"""Rebalancing: each method's counts, validation/test untouched, registry and errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from studio.balance import REBALANCERS, check_method, rebalance
from studio.errors import ConfigError
from studio.tasks import kind_named

SINGLE = kind_named("single_label", ["a", "b", "c"])
MULTI = kind_named("multi_label", ["x", "y", "z"])


@pytest.fixture()
def split_df() -> pd.DataFrame:
    rows = []
    tid = 0
    for split, sizes in (("train", {"a": 60, "b": 20, "c": 10}), ("validation", {"a": 8, "b": 3, "c": 1}),
                         ("test", {"a": 7, "b": 2, "c": 2})):
        for cls, n in sizes.items():
            for _ in range(n):
                rows.append({"task_id": tid, "text": f"{cls} {tid}", "label": cls, "split": split})
                tid += 1
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)


def eval_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["split"] != "train"].sort_values("task_id").reset_index(drop=True)


def test_registry_lists_methods():
    assert list(REBALANCERS) == ["none", "random_over", "random_under", "class_weight"]
    assert all(r.description for r in REBALANCERS.values())


@pytest.mark.parametrize("method,expected", [
    ("none", {"a": 60, "b": 20, "c": 10}),
    ("random_over", {"a": 60, "b": 60, "c": 60}),
    ("random_under", {"a": 10, "b": 10, "c": 10}),
    ("class_weight", {"a": 60, "b": 20, "c": 10}),
])
def test_counts_and_eval_splits_untouched(split_df, method, expected):
    res = rebalance(split_df, kind=SINGLE, method=method, seed=0, class_names=["a", "b", "c"])
    assert res.counts["after"].to_dict() == expected
    assert res.counts["before"].to_dict() == {"a": 60, "b": 20, "c": 10}
    pd.testing.assert_frame_equal(eval_rows(res.df), eval_rows(split_df))
    train = res.df[res.df["split"] == "train"]
    # Resampled rows are real rows: text and label still belong together.
    original = split_df.set_index("task_id")
    assert (original.loc[train["task_id"], "text"].to_numpy() == train["text"].to_numpy()).all()


def test_class_weights_balanced(split_df):
    res = rebalance(split_df, kind=SINGLE, method="class_weight", class_names=["a", "b", "c", "absent"])
    assert res.class_weights is not None and len(res.class_weights) == 4
    np.testing.assert_allclose(res.class_weights[:3], [90 / (3 * 60), 90 / (3 * 20), 90 / (3 * 10)])
    assert res.class_weights[3] == 1.0
    assert rebalance(split_df, kind=SINGLE, method="random_over").class_weights is None


def test_deterministic_for_seed(split_df):
    a = rebalance(split_df, kind=SINGLE, method="random_under", seed=1).df
    b = rebalance(split_df, kind=SINGLE, method="random_under", seed=1).df
    c = rebalance(split_df, kind=SINGLE, method="random_under", seed=2).df
    pd.testing.assert_frame_equal(a, b)
    assert not a["task_id"].equals(c["task_id"])


def test_multi_label_resamples_by_rarest_label():
    labels = [["x"]] * 40 + [["x", "y"]] * 10 + [["z"]] * 5
    df = pd.DataFrame({"task_id": range(55), "text": [str(i) for i in range(55)], "labels": labels,
                       "split": ["train"] * 55})
    res = rebalance(df, kind=MULTI, method="random_over", seed=0)
    keys = res.df["labels"].map(lambda labs: "y" if "y" in labs else labs[0])
    assert keys.value_counts().to_dict() == {"x": 40, "y": 40, "z": 40}
    weights = rebalance(df, kind=MULTI, method="class_weight", class_names=["x", "y", "z"]).class_weights
    assert weights is not None and weights[2] > weights[1] > weights[0]


def test_unknown_method_did_you_mean(split_df):
    with pytest.raises(ConfigError, match="Did you mean 'random_over'"):
        rebalance(split_df, kind=SINGLE, method="random_ovr")
    with pytest.raises(ConfigError, match="one of"):
        check_method("smote-ish-thing-xyz")
