"""Shared fixtures. The real Label Studio server is started once per test session, on a free port, with its
data in a temporary folder, and stopped at the end."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def labelstudio(tmp_path_factory):
    """A running Label Studio: yields (url, token). Started once for the whole session."""
    from studio.config import LabelStudioConfig
    from studio.labelstudio.server import start_server, stop_server

    state = tmp_path_factory.mktemp("ls-state")
    cfg = LabelStudioConfig(port=free_port(), username="admin@tests.local", start_timeout_s=300)
    creds, pid = start_server(state, cfg)
    assert pid is not None, "a test server must be our own, not a reused one"
    yield cfg.base_url, creds.token, state
    stop_server(state)


@pytest.fixture
def ls_client(labelstudio):
    from studio.labelstudio.client import LabelStudioClient

    url, token, _ = labelstudio
    return LabelStudioClient(url, token)


@pytest.fixture
def classification_xml() -> str:
    from studio.labeling import with_choices

    xml = (REPO / "labeling_configs" / "text_classification.xml").read_text()
    return with_choices(xml, ["billing", "cards", "transfers"])


@pytest.fixture
def project(ls_client, classification_xml):
    """A fresh project per test (unique title), on the shared server."""
    return ls_client.create_project(f"test-{uuid.uuid4().hex[:8]}", classification_xml)


@pytest.fixture
def studio_config(tmp_path, labelstudio):
    """A StudioConfig pointing at the test server as an external one, with state in tmp."""
    from studio.config import StudioConfig

    url, token, _ = labelstudio
    return StudioConfig.from_dict({
        "labelstudio": {"url": url, "token": token, "project_title": f"ws-{uuid.uuid4().hex[:8]}"},
        "paths": {"state_dir": str(tmp_path / "state")},
        "demo": {"enabled": False},
    }, root=REPO)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT with random weights + the MiniLM tokenizer, saved to a tmp folder (no download)."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    from studio.models import resolve_model_path

    source = Path(resolve_model_path(""))
    folder = tmp_path_factory.mktemp("tiny-bert")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).exists():
            shutil.copy(source / name, folder / name)
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                        vocab_size=30522, max_position_embeddings=128)
    BertModel(config).save_pretrained(str(folder))
    return str(folder)
