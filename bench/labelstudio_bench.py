"""Shared by the benchmarks that need a real Label Studio: start one in a temp folder, make a project."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def running_labelstudio(prefix: str, *, keep: bool = False) -> Iterator["LabelStudioClient"]:  # noqa: F821
    """Yield a client of a fresh Label Studio (free port, temp data folder); stop it afterwards."""
    from studio.config import LabelStudioConfig
    from studio.labelstudio.client import LabelStudioClient
    from studio.labelstudio.server import start_server, stop_server
    from tests.conftest import free_port

    state = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    cfg = LabelStudioConfig(port=free_port(), start_timeout_s=600)
    print(f"Starting Label Studio on {cfg.base_url} (data in {state}) ...", flush=True)
    creds, _ = start_server(state, cfg)
    try:
        yield LabelStudioClient(cfg.base_url, creds.token, timeout=600)
    finally:
        if not keep:
            stop_server(state)


def classification_project(client, title: str, classes: list[str]):
    """A single-label project over `classes` from the shipped config; returns (project, schema)."""
    from studio.labeling import parse_labeling_config, with_choices

    xml = with_choices((REPO / "labeling_configs" / "text_classification.xml").read_text(), classes)
    project = client.create_project(title, xml)
    return project, parse_labeling_config(project.label_config)
