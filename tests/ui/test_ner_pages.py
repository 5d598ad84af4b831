"""AppTest of the pages on a named-entity (spans) project, on the real test Label Studio."""

from __future__ import annotations

import json
import uuid

import pandas as pd
import pytest

from tests.conftest import REPO
from tests.ui.test_pages import page, texts

pytestmark = pytest.mark.labelstudio

PEOPLE = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank"]
PLACES = ["Paris", "Rome", "Berlin", "Madrid", "Oslo", "Vienna"]


def ner_rows(n: int = 40) -> pd.DataFrame:
    rows = []
    for i in range(n):
        person, place = PEOPLE[i % 6], PLACES[(i // 6) % 6]
        text = f"{person} flew to {place} last week"
        spans = [{"start": 0, "end": len(person), "label": "person"},
                 {"start": text.index(place), "end": text.index(place) + len(place),
                  "label": "person" if i == 7 else "location"}]  # task 8: the place labeled as a person
        rows.append({"text": text, "spans": json.dumps(spans) if i < n - 4 else ""})  # 4 left for the pool
    return pd.DataFrame(rows)


@pytest.fixture
def ner_env(tmp_path, labelstudio, ls_client, monkeypatch):
    """An NER project with 36 annotated sentences and 4 unlabeled, and STUDIO_CONFIG pointing at it."""
    from studio.config import load_config
    from studio.importer import build_tasks
    from studio.labeling import parse_labeling_config
    from studio.workspace import Workspace
    from tests.ui.conftest import write_config

    url, token, _ = labelstudio
    title = f"ner-ui-{uuid.uuid4().hex[:8]}"
    xml = (REPO / "labeling_configs" / "ner.xml").read_text()
    project = ls_client.create_project(title, xml)
    ls_client.import_tasks(project.id, build_tasks(ner_rows(), parse_labeling_config(xml), label_column="spans"))
    config = write_config(tmp_path, url, token, title)
    monkeypatch.setenv("STUDIO_CONFIG", config)
    return Workspace(load_config(config))


def test_ner_overview_and_quality_pages_show_spans(ner_env):
    ws = ner_env
    snapshot = ws.sync().snapshot
    assert snapshot.schema.kind.name == "spans"
    at = page("overview").run()
    assert not at.exception
    at = page("quality").run()
    assert not at.exception
    assert any("No quality report" in v for v in texts(at, "info"))
    at.button[0].click().run()  # Run quality checks
    assert not at.exception
    metrics = {m.label: int(m.value) for m in at.metric}
    report = ws.quality.assessment(snapshot)
    assert metrics["flagged texts"] == int(report.sentences["is_issue"].sum())
    assert metrics["plain cleanlab"] == int(report.sentences["cleanlab_issue"].sum())
    # the spans are highlighted in the text, with their type
    marked = [m.value for m in at.markdown if "<mark" in m.value]
    assert marked and any("person</sub>" in m for m in marked)
    # take the suggestion for the task on show: appended as a relabel carrying the suggested spans
    shown = at.selectbox(key="spans_task").value
    next(b for b in at.button if b.label == "Take the suggestion").click().run()
    assert not at.exception
    log = ws.decisions(snapshot.manifest["project_id"]).read()
    assert log.iloc[-1]["task_id"] == shown and log.iloc[-1]["action"] == "relabel"
    suggested = report.sentences.set_index("task_id").loc[shown, "suggested_spans"]
    assert json.loads(log.iloc[-1]["label"]) == list(suggested)


def test_ner_curate_page_exports_bio_tags(ner_env):
    ws = ner_env
    ws.sync()
    at = page("curate").run()
    assert not at.exception
    at.button(key="curate_save").click().run()  # save settings and preview
    assert not at.exception
    next(b for b in at.button if b.label.startswith("Export")).click().run()
    assert not at.exception and "written" in texts(at, "success")[-1]
    versions = sorted(ws.folder("exports").glob("ds-*/manifest.json"))
    manifest = json.loads(versions[-1].read_text())
    assert manifest["task"] == "spans" and manifest["tag_names"][:3] == ["O", "B-person", "I-person"]
