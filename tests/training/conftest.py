"""Fixtures for the training tests: a tiny BERT (built from a config, no download) and seeded data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from training.data import CuratedData  # noqa: E402

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
CLASSES = ["billing", "delivery", "account"]
KEYWORDS = {
    "billing": ["invoice", "charge", "refund", "payment"],
    "delivery": ["parcel", "courier", "shipping", "package"],
    "account": ["password", "login", "username", "profile"],
}
FILLER = ["please", "help", "my", "the", "with", "today", "again", "is", "not", "working", "i", "need"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer, 32-wide BERT with random weights + the MiniLM tokenizer, saved to a tmp folder."""
    import torch
    from transformers import BertConfig, BertModel

    from studio.models import resolve_model_path

    source = Path(resolve_model_path(""))
    folder = tmp_path_factory.mktemp("tiny-bert")
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, folder / name)
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                        vocab_size=30522, max_position_embeddings=128)
    BertModel(config).save_pretrained(str(folder))
    return str(folder)


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
        "multi_label": data.multi_label, "class_weights": data.class_weights, "counts": data.counts(),
    }))
    return folder


@pytest.fixture(scope="session")
def helpers():
    """The data helpers above, for test modules (importlib mode gives tests no package to import from)."""
    import types

    return types.SimpleNamespace(CLASSES=CLASSES, make_texts=make_texts, frame=frame, write_curated=write_curated)
