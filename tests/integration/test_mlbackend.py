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


def test_label_studio_calls_the_backend(studio_config, project, ls_client, tiny_model):
    cfg = studio_config
    cfg.labelstudio.project_id = project.id
    cfg.train = TrainConfig(base_model=tiny_model, max_steps=2, epochs=1, batch_size=8, head_init="logreg")
    ws = Workspace(cfg)
    schema = parse_labeling_config(project.label_config)
    tasks = []
    for i in range(36):
        label = list(WORDS)[i % 3]
        task = {"data": {"text": f"{WORDS[label]} question {i}"}}
        if i < 30:
            task["annotations"] = [{"result": schema.result(label)}]
        tasks.append(task)
    ls_client.import_tasks(project.id, tasks)
    snapshot = ws.sync().snapshot
    run = run_training(ws.prepare(snapshot).export.path, config=cfg.train, runs_root=ws.runs_root, promote=True)

    backend = MLBackend(ws)
    server = make_server(backend, "127.0.0.1", free_port())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
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
        second = backend.trigger_training(reason="test")
        if job.active:
            assert second["status"] == "already running"
            cancel_job(job.id, jobs_root=ws.jobs_root)
    finally:
        server.shutdown()
