"""The curated data set training reads: a folder written by studio/curate.py, or DataFrames in memory.

Folder layout: manifest.json + train.parquet, validation.parquet, test.parquet (validation/test may be empty).
Columns: task_id (int), text (str), and `label` (int index into class_names) for single-label or `labels`
(list of K 0/1 floats) for multi-label. This module only reads that layout; it never writes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from studio.errors import DataError, EmptyDataError

SPLITS = ("train", "validation", "test")


@dataclass
class CuratedData:
    """Train/validation/test frames plus the label space they index into."""

    train: pd.DataFrame
    class_names: list[str]
    validation: pd.DataFrame = field(default_factory=pd.DataFrame)
    test: pd.DataFrame = field(default_factory=pd.DataFrame)
    multi_label: bool = False
    class_weights: list[float] | None = None
    version_id: str = "inmemory"
    snapshot_id: str = ""

    def split(self, name: str) -> pd.DataFrame:
        return getattr(self, name)

    def counts(self) -> dict[str, int]:
        return {name: int(len(self.split(name))) for name in SPLITS}

    def targets(self, name: str) -> np.ndarray:
        """(N,) int64 class indices for single-label; (N, K) float32 0/1 matrix for multi-label."""
        frame = self.split(name)
        if self.multi_label:
            if len(frame) == 0:
                return np.zeros((0, len(self.class_names)), dtype=np.float32)
            return np.asarray([list(v) for v in frame["labels"]], dtype=np.float32)
        return frame["label"].to_numpy(dtype=np.int64) if len(frame) else np.zeros(0, dtype=np.int64)

    def texts(self, name: str) -> list[str]:
        frame = self.split(name)
        return [str(t) for t in frame["text"]] if len(frame) else []


def load_curated(folder: str | Path) -> CuratedData:
    """Read a curated data set folder (manifest.json + three parquet splits) and validate it."""
    root = Path(folder)
    manifest_file = root / "manifest.json"
    if not manifest_file.exists():
        raise DataError(f"Curated data folder {root} has no manifest.json.",
                        hint="pick a folder written by the Curate step (studio/curate.py)")
    manifest: dict[str, Any] = json.loads(manifest_file.read_text(encoding="utf-8"))
    frames: dict[str, pd.DataFrame] = {}
    for name in SPLITS:
        file = root / f"{name}.parquet"
        if file.exists():
            frames[name] = pd.read_parquet(file)
        elif name == "train":
            raise DataError(f"Curated data folder {root} has no train.parquet.",
                            hint="re-run the Curate step; it writes train/validation/test.parquet")
        else:
            frames[name] = pd.DataFrame()
    for key in ("class_names", "version_id"):
        if key not in manifest:
            raise DataError(f"{manifest_file} has no '{key}'.", hint="re-run the Curate step to rewrite it")
    data = CuratedData(
        train=frames["train"], validation=frames["validation"], test=frames["test"],
        class_names=[str(c) for c in manifest["class_names"]],
        multi_label=bool(manifest.get("multi_label", False)),
        class_weights=manifest.get("class_weights"),
        version_id=str(manifest["version_id"]), snapshot_id=str(manifest.get("snapshot_id", "")),
    )
    validate_curated(data)
    return data


def validate_curated(data: CuratedData) -> None:
    """Raise EmptyDataError / DataError, naming the split and column, before any model is loaded."""
    k = len(data.class_names)
    if k < 2:
        raise EmptyDataError(f"class_names = {data.class_names!r}: training needs at least 2 classes.",
                             hint="label examples of at least two classes before training")
    if data.class_weights is not None and (len(data.class_weights) != k
                                           or any(float(w) <= 0 for w in data.class_weights)):
        raise DataError(f"class_weights = {data.class_weights!r}: expected {k} positive numbers (one per class).",
                        hint="re-run the Curate step, or drop class_weights from the manifest")
    target = "labels" if data.multi_label else "label"
    for name in SPLITS:
        frame = data.split(name)
        if len(frame) == 0:
            continue
        for column in ("text", target):
            if column not in frame.columns:
                raise DataError(f"The {name} split has no '{column}' column (columns: {list(frame.columns)}).",
                                hint=f"a {'multi' if data.multi_label else 'single'}-label data set needs "
                                     f"'text' and '{target}'")
        if frame["text"].isna().any():
            raise DataError(f"The {name} split has {int(frame['text'].isna().sum())} rows with no text.",
                            hint="drop or fill the empty texts in the Curate step")
        try:
            y = data.targets(name)
        except (TypeError, ValueError):
            example = frame[target].iloc[0]
            raise DataError(f"The {name} split's '{target}' column holds {example!r}, expected "
                            + ("a list of K 0/1 numbers." if data.multi_label else "an integer class index."),
                            hint="write label indices (class_names order), not class names, in the Curate step"
                            ) from None
        if data.multi_label:
            if y.ndim != 2 or y.shape[1] != k:
                raise DataError(f"The {name} split's 'labels' rows have length {y.shape[1:]}, expected {k}.",
                                hint="each 'labels' value must be a 0/1 list with one entry per class")
        elif y.min() < 0 or y.max() >= k:
            raise DataError(f"The {name} split has label {int(y.max() if y.max() >= k else y.min())}, "
                            f"expected an index in [0, {k - 1}].", hint="labels index into class_names")
    if len(data.train) == 0:
        raise EmptyDataError("The train split has 0 rows: there is nothing to train on.",
                             hint="label some tasks (or relax the Curate filters) and curate again")
    y = data.targets("train")
    present = int((y.sum(axis=0) > 0).sum()) if data.multi_label else len(np.unique(y))
    if present < 2:
        raise EmptyDataError(f"The train split has examples of only {present} class(es) "
                             f"(of {k}: {data.class_names[:5]}...); a classifier needs at least 2.",
                             hint="label examples of at least two classes and curate again")
