"""A trained NER model back in a real Label Studio: a spans run on an annotated project, its span predictions
pushed for the unlabeled tasks (least certain first), the ML backend's pre-annotations, and a classification run
refused by both rather than pre-annotating the NER project wrongly."""

import uuid

import pandas as pd
import pytest

from studio import cli
from studio.config import load_config
from studio.errors import DataError
from studio.importer import build_tasks
from studio.labeling import parse_labeling_config
from studio.mlbackend import MLBackend
from studio.workspace import Workspace
from tests.conftest import REPO
from training.config import TrainConfig
from training.data import CuratedData
from training.runs import RunRegistry, run_metrics
from training.train import run_training

pytestmark = [pytest.mark.labelstudio, pytest.mark.training]

NER_XML = (REPO / "labeling_configs" / "ner.xml").read_text()
PEOPLE = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank"]
PLACES = ["Paris", "Rome", "Berlin", "Madrid", "Oslo", "Vienna"]
TEMPLATES = ["{p} flew to {l} last week", "yesterday {p} visited {l}", "{p} lives in {l}"]
POOL = ["Carol flew to Vienna last week", "yesterday Erin visited Rome", "Frank lives in Paris",
        "Bob flew to Oslo last week"]


def ner_rows(n: int = 36) -> pd.DataFrame:
    """n annotated sentences (one person, one place each, in three templates) and the POOL texts unlabeled."""
    rows = []
    for i in range(n):
        person, place = PEOPLE[i % 6], PLACES[(i // 6) % 6]
        text = TEMPLATES[i % 3].format(p=person, l=place)
        spans = [{"start": text.index(person), "end": text.index(person) + len(person), "label": "person"},
                 {"start": text.index(place), "end": text.index(place) + len(place), "label": "location"}]
        rows.append({"text": text, "spans": spans})
    return pd.DataFrame(rows + [{"text": t, "spans": ""} for t in POOL])


@pytest.fixture
def ner_ws(ls_client, labelstudio, tmp_path, minilm_path):
    """A fresh NER project with 36 annotated and 4 unlabeled tasks, and a Workspace on it (config file, so that
    the CLI reads the same state), trained with few steps of LoRA on MiniLM."""
    url, token, _ = labelstudio
    project = ls_client.create_project(f"ner-ml-{uuid.uuid4().hex[:8]}", NER_XML)
    ls_client.import_tasks(project.id, build_tasks(ner_rows(), parse_labeling_config(NER_XML), label_column="spans"))
    config = tmp_path / "studio.toml"
    config.write_text(
        f'[labelstudio]\nurl = "{url}"\ntoken = "{token}"\nproject_id = {project.id}\n\n'
        f'[paths]\nstate_dir = "{tmp_path / "state"}"\n\n[demo]\nenabled = false\n\n'
        f'[train]\nbase_model = "{minilm_path}"\nmax_length = 32\nbatch_size = 8\neval_batch_size = 32\n'
        f'epochs = 4\nmax_steps = 16\nlearning_rate = 0.003\n', encoding="utf-8")
    return Workspace(load_config(config)), str(config), project


@pytest.fixture(scope="module")
def minilm_path() -> str:
    from studio.models import resolve_model_path

    return resolve_model_path("")


def predictions_of(client, task_id: int) -> list[dict]:
    return client.request("GET", "api/predictions/", params={"task": task_id})


def assert_span_items(items: list[dict], text: str) -> None:
    """Label Studio `labels` results on the project's tags, each a span of `text` with one type and a score."""
    types = set(parse_labeling_config(NER_XML).classes)
    assert items, f"no entity predicted in {text!r}"
    for item in items:
        assert item["type"] == "labels" and item["from_name"] == "label" and item["to_name"] == "text"
        value = item["value"]
        assert 0 <= value["start"] < value["end"] <= len(text)
        assert value["text"] == text[value["start"]:value["end"]]
        assert len(value["labels"]) == 1 and value["labels"][0] in types
        assert 0.0 < item["score"] <= 1.0


def test_spans_run_predictions_pushed_and_served_by_the_backend(ner_ws, ls_client, tiny_model, capsys):
    ws, config, project = ner_ws
    snapshot = ws.sync().snapshot
    assert snapshot.schema.kind.name == "spans"
    run = run_training(ws.curation.prepare(snapshot).export.path, config=ws.cfg.train, runs_root=ws.runs_root,
                       promote=True)
    metrics = run_metrics(run.path)
    assert metrics["task"] == "spans" and run.metrics["entity_f1"] > 0.5, run.metrics  # fixed templates
    assert cli.main(["--config", config, "runs"]) == 0
    listed = capsys.readouterr().out
    assert f"* {run.id}" in listed and f"entity F1 {run.metrics['entity_f1']:.3f} (precision" in listed
    assert "acc " not in listed
    from training.metrics import model_choice_line

    line = model_choice_line(metrics)
    assert "the LoRA adapter" in line and "validation entity F1" in line and "fast head" in line

    # (a) the run scores the pool and its spans go to Label Studio, the least certain task served first
    scored = ws.active.score_pool(snapshot, scorer="run", strategy="margin", n=3)
    assert scored.model_version == run.id and len(scored.batch) == 3
    assert ws.active.push_pool(scored)["pushed"] == len(POOL)
    # The pool's tasks (a pool text may also be among the annotated ones; the export's order is the database's)
    ids = {r["data"]["text"]: r["id"] for r in ls_client.export_tasks(project.id) if not r["annotations"]}
    scores = {}
    top1 = dict(zip(scored.pool["task_id"], scored.pool["top1"]))
    threshold = ws.cfg.active.preannotate_threshold
    for text in POOL:
        (prediction,) = predictions_of(ls_client, ids[text])
        assert prediction["model_version"] == run.id
        if top1[ids[text]] >= threshold:
            assert_span_items(prediction["result"], text)
        else:  # unsure: ordered, nothing pre-selected
            assert prediction["result"] == []
        scores[ids[text]] = float(prediction["score"])
    assert ls_client.model_versions(project.id) == [run.id]
    assert ls_client.next_task(project.id)["id"] == min(scores, key=scores.get)

    # (b) the ML backend pre-annotates a new text with the run's spans (threshold 0: always; 1: order only)
    backend = MLBackend(ws)
    text = "Dave flew to Madrid last week"
    ask = {"tasks": [{"id": 1, "data": {"text": text}}], "label_config": NER_XML}
    ws.cfg.active.preannotate_threshold = 1.0
    (unsure,) = backend.predict(ask)["results"]
    assert unsure["result"] == [] and unsure["model_version"] == run.id
    ws.cfg.active.preannotate_threshold = 0.0
    (answer,) = backend.predict(ask)["results"]
    assert answer["model_version"] == run.id and 0.0 <= answer["score"] <= 1.0
    assert answer["score"] == pytest.approx(unsure["score"])
    assert_span_items(answer["result"], text)
    assert {(i["value"]["text"], i["value"]["labels"][0]) for i in answer["result"]} == {
        ("Dave", "person"), ("Madrid", "location")}

    # (c) a classification run promoted on this project: no pre-annotation, and no pool scores from it
    classes = ["billing", "cards"]
    frame = pd.DataFrame({"task_id": range(8), "text": [f"{c} question {i}" for i in range(4) for c in classes],
                          "label": [0, 1] * 4})
    other = run_training(CuratedData(train=frame, class_names=classes, version_id="v-cls", snapshot_id="s"),
                         config=TrainConfig(base_model=tiny_model, max_steps=1, head_init="random", batch_size=8),
                         runs_root=ws.runs_root, promote=True)
    assert RunRegistry(ws.runs_root).current().id == other.id
    assert backend.predict({"tasks": [{"id": 1, "data": {"text": text}}], "label_config": NER_XML}) == {
        "results": []}
    with pytest.raises(DataError, match=f"Run {other.id} was trained for a single_label task"):
        ws.active.score_pool(snapshot, scorer="run", strategy="margin", n=3)
    assert {p["model_version"] for t in POOL for p in predictions_of(ls_client, ids[t])} == {run.id}
