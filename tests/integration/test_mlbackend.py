"""The ML backend, called by Label Studio itself: setup on connect, /predict for pre-annotations, and the
"Start training" button enqueuing the background job (once, never twice)."""

import threading
import time

import pytest

from studio.labeling import parse_labeling_config
from studio.mlbackend import MLBackend, connect, make_server
from studio.workspace import Workspace
from tests.conftest import free_port
from training.config import TrainConfig
from training.jobs import cancel_job, current_job
from training.train import run_training

pytestmark = [pytest.mark.labelstudio, pytest.mark.training]
WORDS = {"billing": "invoice refund charge", "cards": "card pin contactless", "transfers": "transfer iban wire"}


def import_demo(ls_client, project) -> None:
    """36 tasks of three word-coded classes, the first 30 labeled."""
    schema = parse_labeling_config(project.label_config)
    tasks = []
    for i in range(36):
        label = list(WORDS)[i % 3]
        task = {"data": {"text": f"{WORDS[label]} question {i}"}}
        if i < 30:
            task["annotations"] = [{"result": schema.result(label)}]
        tasks.append(task)
    ls_client.import_tasks(project.id, tasks)


def serve(backend: MLBackend):
    server = make_server(backend, "127.0.0.1", free_port())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_label_studio_calls_the_backend(studio_config, project, ls_client, tiny_model):
    cfg = studio_config
    cfg.labelstudio.project_id = project.id
    cfg.train = TrainConfig(base_model=tiny_model, max_steps=2, epochs=1, batch_size=8, head_init="logreg")
    ws = Workspace(cfg)
    import_demo(ls_client, project)
    snapshot = ws.sync().snapshot
    run = run_training(ws.curation.prepare(snapshot).export.path, config=cfg.train, runs_root=ws.runs_root,
                       promote=True)

    backend = MLBackend(ws)
    server, url = serve(backend)
    try:
        ml_id = connect(ws, project.id, url)
        assert "setup" in backend.calls and "health" in backend.calls  # Label Studio called us on connect
        assert connect(ws, project.id, url) == ml_id  # idempotent

        ls_client.request("POST", "api/dm/actions", params={"id": "retrieve_tasks_predictions",
                                                             "project": project.id},
                          json_body={"selectedItems": {"all": True, "excluded": []}})
        assert "predict" in backend.calls
        assert run.id in ls_client.model_versions(project.id)

        ls_client.request("POST", f"api/ml/{ml_id}/train", json_body={})
        assert {"webhook", "train"} & set(backend.calls)
        deadline = time.monotonic() + 120
        while current_job(jobs_root=ws.jobs_root) is None and time.monotonic() < deadline:
            time.sleep(0.5)
        job = current_job(jobs_root=ws.jobs_root)
        assert job is not None
        assert job.active  # a real training run lasts far longer than these few lines
        second = backend.trigger_training(reason="test")
        assert second["status"] == "already running" and second["job_id"] == job.id
        cancel_job(job.id, jobs_root=ws.jobs_root)
    finally:
        server.shutdown()


def test_before_the_first_run_the_fast_learner_pre_annotates(studio_config, project, ls_client):
    """No training run: /predict answers nothing until the fast learner on the newest snapshot's labels is fitted
    (in the background), then pre-annotates with it, as `fast-<snapshot>`, also when Label Studio asks."""
    studio_config.labelstudio.project_id = project.id
    ws = Workspace(studio_config)
    import_demo(ls_client, project)
    backend = MLBackend(ws)
    ask = {"tasks": [{"data": {"text": "card pin contactless question 99"}}], "label_config": project.label_config}
    assert backend.predict(ask) == {"results": []}  # no snapshot yet: nothing to learn from
    snapshot = ws.sync().snapshot
    deadline = time.monotonic() + 120
    while backend.fast_model() is None and time.monotonic() < deadline:  # the first call starts the fitting
        time.sleep(0.2)
    schema = parse_labeling_config(project.label_config)
    ws.cfg.active.preannotate_threshold = 0.0  # every answer pre-selected, with the model's probability on it
    (answer,) = backend.predict(ask)["results"]
    assert answer["model_version"] == f"fast-{snapshot.id}"
    (item,) = answer["result"]
    assert item["value"] == schema.result("cards")[0]["value"] and 1 / 3 < item["score"] <= 1.0
    ws.cfg.active.preannotate_threshold = 1.0  # below it: no pre-selected answer, the same score
    (unsure,) = backend.predict(ask)["results"]
    assert unsure["result"] == [] and unsure["score"] == pytest.approx(answer["score"])

    server, url = serve(backend)
    try:
        connect(ws, project.id, url)  # Label Studio now asks the backend for tasks listed without predictions
        before = backend.calls.count("predict")
        assert ws.sync().created is False and ws.sync().created is False  # nothing changed: no new snapshot
        assert backend.calls.count("predict") == before  # and a sync's task listing asks no model
        ls_client.request("POST", "api/dm/actions", params={"id": "retrieve_tasks_predictions",
                                                             "project": project.id},
                          json_body={"selectedItems": {"all": True, "excluded": []}})
        assert f"fast-{snapshot.id}" in ls_client.model_versions(project.id)
    finally:
        server.shutdown()


def test_one_backend_serves_each_project_with_its_own_workspace(labelstudio, ls_client, classification_xml,
                                                                 tmp_path, monkeypatch, caplog):
    """Three Label Studio projects connected to one backend: the two configured ones (one by id, one by title)
    reach their own workspaces; the third, configured nowhere, gets no prediction and a log line."""
    import logging
    import uuid

    from studio.config import StudioConfig
    from studio.mlbackend import ProjectBackend, project_id_of
    from tests.conftest import REPO

    url, token, _ = labelstudio
    tag = uuid.uuid4().hex[:6]
    first, second, stranger = (ls_client.create_project(f"{name}-{tag}", classification_xml)
                               for name in ("first", "second", "stranger"))
    for project in (first, second, stranger):
        ls_client.import_tasks(project.id, [{"data": {"text": f"card pin question {i}"}} for i in range(2)])
    cfg = StudioConfig.from_dict({
        "labelstudio": {"url": url, "token": token, "project_title": first.title, "project_id": first.id},
        "paths": {"state_dir": str(tmp_path / "state")}, "demo": {"enabled": False},
        "projects": {"second": {"title": second.title}},
    }, root=REPO)
    backend = MLBackend(Workspace(cfg))
    asked: list[tuple[str, int | None]] = []
    answer = ProjectBackend.predict

    def predict(self, payload):
        asked.append((self.ws.key, project_id_of(payload)))
        return answer(self, payload)
    monkeypatch.setattr(ProjectBackend, "predict", predict)
    server, backend_url = serve(backend)
    try:
        for project in (first, second, stranger):
            connect(backend.backend().ws, project.id, backend_url)
        with caplog.at_level(logging.WARNING, logger="studio.mlbackend"):
            for project in (first, second, stranger):
                ls_client.request("POST", "api/dm/actions", params={"id": "retrieve_tasks_predictions",
                                                                     "project": project.id},
                                  json_body={"selectedItems": {"all": True, "excluded": []}})
        assert ("intents", first.id) in asked and ("second", second.id) in asked
        assert {key for key, project_id in asked if project_id == stranger.id} == set()  # no workspace asked
        assert any(f"Label Studio project {stranger.id}" in r.getMessage() for r in caplog.records)
        assert backend.resolve() == {first.id: "intents", second.id: "second"}
        assert backend.backend("second").ws.runs_root != backend.backend().ws.runs_root
    finally:
        server.shutdown()
