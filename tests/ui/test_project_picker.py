"""The sidebar's project picker (studio/app/main.py): two projects on the real test Label Studio; the picker
switches every page to the chosen project's workspace and keeps the choice in the URL."""

from __future__ import annotations

import uuid

import pytest
from streamlit.testing.v1 import AppTest

from studio.app.state import md
from tests.conftest import REPO

MAIN = REPO / "studio" / "app" / "main.py"
pytestmark = pytest.mark.labelstudio


@pytest.fixture
def two_projects(app_env, tmp_path):
    """app_env's provisioned demo project (primary, "intents") plus an empty NER project "entities"."""
    import os

    from studio.config import load_config
    from studio.provision import provision
    from studio.workspace import Workspace

    title = f"ui-ner-{uuid.uuid4().hex[:8]}"
    config = os.environ["STUDIO_CONFIG"]
    with open(config, "a") as file:
        file.write(f'[projects.entities]\ntitle = "{title}"\n'
                   f'labeling_config = "{REPO / "labeling_configs" / "ner.xml"}"\n')
    entities = Workspace(load_config(config), project="entities")
    provision(entities)  # created from its labeling config, no demo data
    return app_env, entities


def app() -> AppTest:
    from studio.app import state

    state._studio.clear()
    state.load_snapshot.clear()
    return AppTest.from_file(str(MAIN), default_timeout=240)


def captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def test_the_picker_switches_the_pages_to_the_chosen_project(two_projects):
    intents, entities = two_projects
    intents_title, entities_title = intents.spec.title, entities.spec.title
    at = app().run()
    assert not at.exception
    picker = at.sidebar.selectbox(key="project")
    assert picker.options == [intents_title, entities_title] and picker.value == "intents"
    assert f"project **{md(intents_title)}**" in captions(at)  # the Overview page, on the primary project
    assert at.query_params["project"] == "intents"

    picker.set_value("entities").run()
    assert not at.exception
    assert f"project **{md(entities_title)}**" in captions(at) and md(intents_title) not in captions(at)
    assert any("Label Studio has 0 tasks" in i.value for i in at.info)  # the empty NER project, not the demo
    assert at.query_params["project"] == "entities"
    assert at.session_state["project"] == "entities"

    # A reload (a new session) with ?project= in the URL opens the same project.
    again = app()
    again.query_params["project"] = "entities"
    again.run()
    assert not again.exception and again.sidebar.selectbox(key="project").value == "entities"
    assert f"project **{md(entities_title)}**" in captions(again)
