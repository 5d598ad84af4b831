"""Export: files exist and reload, the id is content-addressed, the card says what it must."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from studio.errors import DataError  # noqa: E402
from studio.tasks import kind_named
from studio.export import export_curated  # noqa: E402

CLASSES = ["card_lost", "refund", "top_up"]


def curated(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "task_id": np.arange(n) + 1000,
        "text": [f"text number {i} ünïcode" for i in range(n)],
        "label": rng.choice(CLASSES, size=n),
        "split": ["train"] * (n - 20) + ["validation"] * 10 + ["test"] * 10,
    })


def export(df, tmp_path, **kw):
    args = dict(kind=kind_named("single_label", CLASSES), class_names=CLASSES, out_root=tmp_path,
                snapshot_id="snap-abc", decisions_applied={"relabel": 2, "exclude": 1},
                source_license="CC-BY-4.0 (banking77)",
                sampler="class_weight", class_weights=[1.0, 2.0, 0.5])
    args.update(kw)
    return export_curated(df, **args)


def test_files_exist_and_reload(tmp_path):
    from datasets import ClassLabel, load_from_disk

    df = curated()
    info = export(df, tmp_path)
    assert info.created and info.path == tmp_path / info.version_id
    for split in ("train", "validation", "test"):
        assert (info.path / f"{split}.parquet").exists() and (info.path / f"{split}.jsonl").exists()
    train = pd.read_parquet(info.path / "train.parquet")
    assert list(train.columns) == ["task_id", "text", "label"] and len(train) == 40
    expected = df[df["split"] == "train"].sort_values("task_id")
    assert train["label"].tolist() == [CLASSES.index(c) for c in expected["label"]]
    jsonl = pd.read_json(info.path / "test.jsonl", lines=True)
    assert len(jsonl) == 10 and jsonl["text"].iloc[0].endswith("ünïcode")
    ds = load_from_disk(str(info.path / "dataset"))
    assert set(ds) == {"train", "validation", "test"} and ds["validation"].num_rows == 10
    assert isinstance(ds["train"].features["label"], ClassLabel)
    assert ds["train"].features["label"].names == CLASSES
    manifest = json.loads((info.path / "manifest.json").read_text())
    assert manifest["version_id"] == info.version_id and manifest["snapshot_id"] == "snap-abc"
    assert manifest["class_names"] == CLASSES and manifest["task"] == "single_label"
    assert manifest["class_weights"] == [1.0, 2.0, 0.5]
    assert sum(manifest["counts"]["train"].values()) == 40
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_same_curation_same_id_no_rewrite(tmp_path):
    df = curated()
    first = export(df, tmp_path)
    stamp = (first.path / "manifest.json").stat().st_mtime_ns
    second = export(df.sample(frac=1.0, random_state=1), tmp_path)  # row order is not content
    assert second.version_id == first.version_id and not second.created
    assert (first.path / "manifest.json").stat().st_mtime_ns == stamp
    assert len(list(tmp_path.iterdir())) == 1


def test_changed_label_or_weights_changes_id(tmp_path):
    df = curated()
    base = export(df, tmp_path).version_id
    changed = df.copy()
    changed.loc[0, "label"] = next(c for c in CLASSES if c != df.loc[0, "label"])
    assert export(changed, tmp_path).version_id != base
    assert export(df, tmp_path, class_weights=[1.0, 1.0, 1.0]).version_id != base
    moved = df.copy()
    moved.loc[0, "split"] = "test"
    assert export(moved, tmp_path).version_id != base


def test_card_mentions_counts_licence_and_decisions(tmp_path):
    info = export(curated(), tmp_path)
    card = (info.path / "README.md").read_text()
    assert "CC-BY-4.0 (banking77)" in card and "snap-abc" in card and "relabel: 2" in card
    assert "| **total** | 40 | 10 | 10 |" in card
    for i, name in enumerate(CLASSES):
        assert f"| {i} | {name} |" in card


def test_multi_label_export(tmp_path):
    from datasets import load_from_disk

    df = pd.DataFrame({"task_id": [1, 2, 3, 4], "text": ["a", "b", "c", "d"],
                       "labels": [["refund"], ["refund", "top_up"], [], ["card_lost"]],
                       "split": ["train", "train", "validation", "test"]})
    info = export(df, tmp_path, kind=kind_named("multi_label", CLASSES), class_weights=None, sampler="none")
    train = pd.read_parquet(info.path / "train.parquet")
    assert [list(v) for v in train["labels"]] == [[0.0, 1.0, 0.0], [0.0, 1.0, 1.0]]
    ds = load_from_disk(str(info.path / "dataset"))
    assert ds["validation"][0]["labels"] == [0.0, 0.0, 0.0]
    assert info.manifest["task"] == "multi_label" and info.manifest["class_weights"] is None


def test_unknown_label_and_bad_weights_raise(tmp_path):
    df = curated()
    with pytest.raises(DataError, match="not in class_names"):
        export(df.assign(label="nope"), tmp_path)
    with pytest.raises(DataError, match="class_weights"):
        export(df, tmp_path, class_weights=[1.0])
    assert not any(tmp_path.iterdir())
