"""`studio up` with several projects, on the real test Label Studio (as an external server): every configured
project is provisioned with its demo data, the one ML backend is connected to each, each URL is printed; a second
`up` creates and imports nothing; a project whose demo file is missing is reported and left out."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from studio import cli
from studio.config import load_config
from studio.workspace import Workspace
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.labelstudio


def _config(tmp_path, url: str, token: str) -> tuple[str, dict[str, str]]:
    tag = uuid.uuid4().hex[:6]
    titles = {"intents": f"up-intents-{tag}", "topics": f"up-topics-{tag}", "broken": f"up-broken-{tag}"}
    pd.read_csv(REPO / "data" / "demo" / "banking77_demo.csv").head(30).to_csv(tmp_path / "intents.csv", index=False)
    pd.DataFrame({"text": [f"my card and a transfer {i}" for i in range(12)],
                  "topics": ["cards,transfers", "billing"] * 6}).to_csv(tmp_path / "topics.csv", index=False)
    file = tmp_path / "studio.toml"
    file.write_text(
        f'[labelstudio]\nurl = "{url}"\ntoken = "{token}"\nproject_title = "{titles["intents"]}"\n'
        f'labeling_config = "{REPO / "labeling_configs" / "text_classification.xml"}"\n'
        f'[paths]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[demo]\nfile = "{tmp_path / "intents.csv"}"\nannotated = 10\n'
        f'[mlbackend]\nport = {free_port()}\n'
        f'[projects.topics]\ntitle = "{titles["topics"]}"\n'
        f'labeling_config = "{REPO / "labeling_configs" / "multilabel_classification.xml"}"\n'
        f'[projects.topics.demo]\nfile = "{tmp_path / "topics.csv"}"\nlabel_column = "topics"\nannotated = 4\n'
        f'[projects.broken]\ntitle = "{titles["broken"]}"\n'
        f'[projects.broken.demo]\nfile = "{tmp_path / "missing.csv"}"\n')
    return str(file), titles


def test_up_provisions_every_project_and_connects_the_backend_to_each(tmp_path, labelstudio, ls_client, capsys):
    url, token, _ = labelstudio
    config, titles = _config(tmp_path, url, token)
    try:
        assert cli.main(["--config", config, "up", "--no-app", "--detach"]) == 0
        out = capsys.readouterr().out
        intents, topics = (ls_client.find_project(titles[key]) for key in ("intents", "topics"))
        assert ls_client.project_task_count(intents.id) == 30 and ls_client.project_task_count(topics.id) == 12
        assert f"{url}/projects/{intents.id} ({titles['intents']}; studio --project intents)" in out
        assert f"{url}/projects/{topics.id} ({titles['topics']}; studio --project topics)" in out
        assert "connected to the 2 projects" in out
        assert f"warning: project '{titles['broken']}' ([projects.broken]) was not provisioned" in out
        assert "missing.csv does not exist" in out and ls_client.find_project(titles["broken"]) is None
        backend_url = load_config(config).mlbackend.url
        for project in (intents, topics):
            connected = ls_client.request("GET", "api/ml", params={"project": project.id})
            assert [b["url"].rstrip("/") for b in connected] == [backend_url]
        topics_ws = Workspace(load_config(config), project="topics")
        snapshot = topics_ws.sync().snapshot
        assert snapshot.schema.kind.name == "multi_label" and snapshot.manifest["counts"]["labeled_tasks"] == 4
        assert topics_ws.store.root == tmp_path / "state" / "projects" / "topics" / "snapshots"
    finally:
        assert cli.main(["--config", config, "down"]) == 0
    assert "Stopped the ML backend." in capsys.readouterr().out

    try:
        assert cli.main(["--config", config, "up", "--no-app", "--detach"]) == 0  # again: nothing new
        out = capsys.readouterr().out
        assert "created" not in out and "imported" not in out and out.count(" found.") == 2
        assert ls_client.project_task_count(intents.id) == 30 and ls_client.project_task_count(topics.id) == 12
        assert len(ls_client.request("GET", "api/ml", params={"project": topics.id})) == 1
    finally:
        cli.main(["--config", config, "down"])
