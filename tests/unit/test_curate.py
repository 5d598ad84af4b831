"""Split: stratified, task- and group-disjoint, deterministic, tiny classes placed as documented."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from studio.curate import MIN_CLASS_SIZE, CurateConfig, split_dataset, split_counts
from studio.errors import ConfigError, DataError
from studio.tasks import kind_named

SINGLE = kind_named("single_label", ["a", "b", "c"])
MULTI = kind_named("multi_label", ["common", "rare"])


def make_df(sizes: dict[str, int], *, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = [c for c, n in sizes.items() for _ in range(n)]
    rng.shuffle(labels)
    n = len(labels)
    return pd.DataFrame({"task_id": np.arange(100, 100 + n), "text": [f"t{i}" for i in range(n)],
                         "label": labels})


def test_stratified_within_tolerance_and_sizes_match_ratios():
    df = make_df({"a": 400, "b": 200, "c": 100, "d": 50})
    res = split_dataset(kind=SINGLE, df=df, ratios=(0.8, 0.1, 0.1), seed=3)
    assert list(res.df.index) == list(df.index) and (res.df["label"] == df["label"]).all()
    counts = res.counts
    for cls, row in counts.iterrows():
        for split, ratio in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
            assert abs(row[split] - ratio * row["total"]) <= 1, (cls, split, row.to_dict())
    sizes = res.df["split"].value_counts()
    assert abs(sizes["train"] - 600) <= 2 and abs(sizes["test"] - 75) <= 2
    assert res.warnings == []


def test_no_task_in_two_splits_even_with_duplicate_rows():
    df = make_df({"a": 60, "b": 60})
    dup = pd.concat([df, df.iloc[:20]], ignore_index=True)  # the same task twice (e.g. two annotations)
    res = split_dataset(kind=SINGLE, df=dup, seed=0)
    per_task = res.df.groupby("task_id")["split"].nunique()
    assert (per_task == 1).all()


def test_groups_never_straddle_splits():
    df = make_df({"a": 300, "b": 300})
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 80, size=len(df))  # ~7-8 rows per group, mixed classes
    res = split_dataset(kind=SINGLE, df=df, seed=0, groups=groups)
    per_group = res.df.assign(g=groups).groupby("g")["split"].nunique()
    assert (per_group == 1).all()
    sizes = res.df["split"].value_counts(normalize=True)
    assert 0.7 < sizes["train"] < 0.9 and sizes.get("test", 0) > 0.03


def test_deterministic_for_a_seed_and_seed_matters():
    df = make_df({"a": 100, "b": 80, "c": 40})
    a = split_dataset(kind=SINGLE, df=df, seed=7).df["split"].tolist()
    b = split_dataset(kind=SINGLE, df=df, seed=7).df["split"].tolist()
    c = split_dataset(kind=SINGLE, df=df, seed=8).df["split"].tolist()
    assert a == b
    assert a != c


def test_tiny_class_goes_to_train_with_warning():
    df = make_df({"big": 100, "other": 50, "tiny": MIN_CLASS_SIZE - 1})
    res = split_dataset(kind=SINGLE, df=df, seed=0)
    tiny = res.df[res.df["label"] == "tiny"]
    assert (tiny["split"] == "train").all()
    assert any("'tiny'" in w and "train" in w for w in res.warnings)


def test_class_too_small_for_every_split_is_warned():
    df = make_df({"big": 100, "small": 5})
    res = split_dataset(kind=SINGLE, df=df, ratios=(0.8, 0.1, 0.1), seed=0)
    small = res.counts.loc["small"]
    assert small["total"] == 5 and small["train"] >= 3
    assert any("'small'" in w and "has none in" in w for w in res.warnings)


def test_zero_ratio_split_gets_nothing():
    df = make_df({"a": 50, "b": 50})
    res = split_dataset(kind=SINGLE, df=df, ratios=(0.8, 0.2, 0.0), seed=0)
    assert (res.df["split"] != "test").all()
    assert not any("test" in w for w in res.warnings)


def test_multi_label_stratifies_rare_label():
    rng = np.random.default_rng(0)
    labels = []
    for i in range(400):
        labs = ["common"] if rng.random() < 0.9 else []
        if i % 20 == 0:
            labs.append("rare")  # 20 rows
        labels.append(labs)
    df = pd.DataFrame({"task_id": range(400), "text": [f"x{i}" for i in range(400)], "labels": labels})
    res = split_dataset(kind=MULTI, df=df, seed=0)
    rare = res.counts.loc["rare"]
    assert rare["total"] == 20 and rare["validation"] == 2 and rare["test"] == 2
    assert res.counts.loc["common", "total"] == sum("common" in labs for labs in labels)


def test_bad_inputs_raise_named_errors():
    df = make_df({"a": 10, "b": 10})
    with pytest.raises(ConfigError, match="ratios"):
        split_dataset(kind=SINGLE, df=df, ratios=(0.5, 0.3, 0.1))
    with pytest.raises(DataError, match="groups"):
        split_dataset(kind=SINGLE, df=df, groups=np.zeros(3))
    with pytest.raises(DataError, match="label"):
        split_dataset(kind=SINGLE, df=df.drop(columns="label"))
    with pytest.raises(DataError, match="no label"):
        split_dataset(kind=SINGLE, df=df.assign(label=[None] + ["a"] * 19))


def test_split_counts_shape():
    res = split_dataset(kind=SINGLE, df=make_df({"a": 30, "b": 20}), seed=0)
    table = split_counts(res.df, kind=SINGLE)
    assert list(table.columns) == ["train", "validation", "test", "total"]
    assert table["total"].sum() == 50


def test_curate_config_validates():
    cfg = CurateConfig.from_dict({"ratios": "0.7, 0.2, 0.1", "sampler": "random_over", "seed": "4"})
    assert cfg.ratios == [0.7, 0.2, 0.1] and cfg.seed == 4
    with pytest.raises(ConfigError, match="sum"):
        CurateConfig(ratios=[0.7, 0.2, 0.2])
    with pytest.raises(ConfigError, match="train fraction"):
        CurateConfig(ratios=[0.0, 0.5, 0.5])
    with pytest.raises(ConfigError, match="Did you mean 'random_under'"):
        CurateConfig(sampler="random_undr")
    with pytest.raises(ConfigError, match="near_duplicate_threshold"):
        CurateConfig(near_duplicate_threshold=1.5)
