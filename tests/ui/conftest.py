"""UI fixtures: a workspace on the real test Label Studio, exposed to the app through STUDIO_CONFIG."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import REPO


def write_config(tmp_path, url: str, token: str, title: str) -> str:
    file = tmp_path / "studio.toml"
    file.write_text(
        f'[labelstudio]\nurl = "{url}"\ntoken = "{token}"\nproject_title = "{title}"\n'
        f'labeling_config = "{REPO / "labeling_configs" / "text_classification.xml"}"\n'
        f'[paths]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[demo]\nfile = "{REPO / "data" / "demo" / "banking77_demo.csv"}"\nannotated = 60\n'
    )
    return str(file)


@pytest.fixture
def app_env(tmp_path, labelstudio, monkeypatch):
    """A provisioned demo project (first 200 demo rows, 60 annotated) and STUDIO_CONFIG pointing at it."""
    import pandas as pd

    from studio.config import load_config
    from studio.provision import provision
    from studio.workspace import Workspace

    url, token, _ = labelstudio
    demo = tmp_path / "demo.csv"
    pd.read_csv(REPO / "data" / "demo" / "banking77_demo.csv").head(200).to_csv(demo, index=False)
    config = write_config(tmp_path, url, token, f"ui-{uuid.uuid4().hex[:8]}")
    text = open(config).read().replace(str(REPO / "data" / "demo" / "banking77_demo.csv"), str(demo))
    open(config, "w").write(text)
    monkeypatch.setenv("STUDIO_CONFIG", config)
    ws = Workspace(load_config(config))
    provision(ws)
    return ws
