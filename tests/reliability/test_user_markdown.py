"""Data people typed is shown as text, never as Markdown (issue 17, section 3): a project title with an image that
would load from elsewhere, a class name with a link or a colour directive."""

import uuid

import pytest

from studio.app.state import md, safe


def test_md_escapes_every_markdown_character_of_a_value():
    value = "![x](http://evil.example/p.png) :red[big] $x$ **b** <img>"
    escaped = md(value)
    assert "![" not in escaped and "](" not in escaped and ":red[" not in escaped and "**" not in escaped
    assert escaped.replace("\\", "") == value  # every character is still there, as text


def test_safe_keeps_the_studios_own_code_and_bold_but_no_links():
    message = "Class '![x](http://evil.example/p.png)' has `code` and **bold**, costs $5"
    out = safe(message)
    assert "`code`" in out and "**bold**" in out and "![x](" not in out and "\\$5" in out


@pytest.mark.labelstudio
def test_a_project_title_with_markdown_is_shown_as_text(tmp_path, labelstudio, monkeypatch):
    import pandas as pd
    from streamlit.testing.v1 import AppTest

    from studio.app import state
    from studio.config import load_config
    from studio.provision import provision
    from studio.workspace import Workspace
    from tests.conftest import REPO
    from tests.ui.conftest import write_config

    url, token, _ = labelstudio
    title = f"![x](http://127.0.0.1:9/x.png) {uuid.uuid4().hex[:6]}"
    demo = tmp_path / "demo.csv"
    pd.read_csv(REPO / "data" / "demo" / "banking77_demo.csv").head(20).to_csv(demo, index=False)
    config = write_config(tmp_path, url, token, title)
    text = open(config).read().replace(str(REPO / "data" / "demo" / "banking77_demo.csv"), str(demo))
    open(config, "w").write(text.replace("annotated = 60", "annotated = 10"))
    monkeypatch.setenv("STUDIO_CONFIG", config)
    ws = Workspace(load_config(config))
    provision(ws)
    ws.sync()
    state._studio.clear()
    state.load_snapshot.clear()
    at = AppTest.from_file(str(REPO / "studio" / "app" / "views" / "overview.py"), default_timeout=120).run()
    assert not at.exception
    shown = " ".join(c.value for c in at.caption)
    assert md(title) in shown and "![x](" not in shown
