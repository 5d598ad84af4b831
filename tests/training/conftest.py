"""Fixtures for the training tests: seeded data (the tiny BERT fixture `tiny_model` is in tests/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from training.data import CuratedData  # noqa: E402

CLASSES = ["billing", "delivery", "account"]
KEYWORDS = {
    "billing": ["invoice", "charge", "refund", "payment"],
    "delivery": ["parcel", "courier", "shipping", "package"],
    "account": ["password", "login", "username", "profile"],
}
FILLER = ["please", "help", "my", "the", "with", "today", "again", "is", "not", "working", "i", "need"]


def make_texts(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """n short texts, each with two keywords of its class among filler words; labels (n,) in [0, 3)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASSES)
    rng.shuffle(labels)
    texts = []
    for y in labels:
        words = list(rng.choice(FILLER, size=5)) + list(rng.choice(KEYWORDS[CLASSES[y]], size=2, replace=False))
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts, labels


def frame(texts: list[str], labels: np.ndarray, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"task_id": np.arange(start, start + len(texts)), "text": texts, "label": labels})


@pytest.fixture(scope="session")
def curated() -> CuratedData:
    """3 classes with distinct keywords: 90 train, 30 validation, 30 test rows."""
    tr, va, te = make_texts(90, 1), make_texts(30, 2), make_texts(30, 3)
    return CuratedData(train=frame(*tr), validation=frame(*va, 1000), test=frame(*te, 2000),
                       class_names=list(CLASSES), version_id="v0123456789", snapshot_id="snap-1")


def write_curated(data: CuratedData, folder: Path) -> Path:
    """The layout studio/curate.py writes, so file-based tests read what the app would hand over."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        data.split(split).to_parquet(folder / f"{split}.parquet")
    (folder / "manifest.json").write_text(json.dumps({
        "version_id": data.version_id, "snapshot_id": data.snapshot_id, "class_names": data.class_names,
        "task": data.task, "class_weights": data.class_weights, "counts": data.counts(),
    }))
    return folder


@pytest.fixture(scope="session")
def helpers():
    """The data helpers above, for test modules (importlib mode gives tests no package to import from)."""
    import types

    return types.SimpleNamespace(CLASSES=CLASSES, make_texts=make_texts, frame=frame, write_curated=write_curated)
