"""One ML backend serves every configured project: each request goes to the workspace of the Label Studio
project it names, and a project that is not configured gets nothing (never another project's model). Offline:
the projects have configured ids, and the one found by title finds no Label Studio."""

import logging

import pytest

from studio.config import StudioConfig
from studio.mlbackend import MLBackend, project_id_of
from studio.workspace import Workspace
from tests.conftest import free_port


@pytest.mark.parametrize("payload, expected", [
    ({"project": "12.1767225600", "tasks": []}, 12),  # /predict, /setup, /train: "<id>.<created timestamp>"
    ({"action": "START_TRAINING", "project": {"id": 5, "title": "x"}}, 5),  # a webhook: the project object
    ({"action": "ANNOTATION_CREATED", "task": {"id": 1, "project": 3}}, 3),
    ({"tasks": [{"id": 1, "project": 4, "data": {}}]}, 4),
    ({"project": 8}, 8),
    ({"tasks": [{"data": {"text": "x"}}]}, None),  # a direct call naming no project
    ({"project": "not-an-id"}, None),
])
def test_the_project_of_a_request(payload, expected):
    assert project_id_of(payload) == expected


@pytest.fixture
def backend(tmp_path) -> MLBackend:
    cfg = StudioConfig.from_dict({
        "labelstudio": {"url": f"http://127.0.0.1:{free_port()}", "token": "t", "timeout_s": 2, "project_id": 11},
        "paths": {"state_dir": str(tmp_path / "state")},
        "projects": {"support": {"title": "Customer support answers", "project_id": 22},
                     "later": {"title": "Not created yet"}},
    }, root=tmp_path)
    return MLBackend(Workspace(cfg))


def test_each_request_goes_to_its_projects_workspace(backend):
    assert backend.resolve() == {11: "intents", 22: "support"}  # "later" is on no Label Studio: left out
    assert backend.route({"project": "22.1767225600"}, "predict").ws.key == "support"
    assert backend.route({"project": {"id": 11}}, "webhook").ws.key == "intents"
    assert backend.route({}, "predict").ws is backend.ws  # no project named: the workspace's own
    support = backend.backend("support")
    assert support is backend.backend("support") and support.ws.runs_root != backend.ws.runs_root
    assert support.ws.runs_root.parent.name == "support"


def test_a_project_that_is_not_configured_gets_nothing_and_a_log_line(backend, caplog):
    ask = {"project": "99.1767225600", "tasks": [{"data": {"text": "card pin"}}], "label_config": "<View/>"}
    with caplog.at_level(logging.WARNING, logger="studio.mlbackend"):
        assert backend.predict(ask) == {"results": []}
        assert backend.setup({"project": "99.1767225600"}) == {"model_version": "none"}
        assert backend.webhook({"action": "START_TRAINING", "project": {"id": 99}})["status"] == "ignored"
        assert backend.train({"project": "99.1767225600"})["status"] == "ignored"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and all("Label Studio project 99" in line and "intents, support, later" in line
                                   for line in lines)
    assert set(backend._backends) <= {"intents", "support", "later"}  # nothing was made for project 99


def test_an_answer_project_gets_no_per_task_pre_annotation(backend, caplog):
    from tests.conftest import REPO

    xml = (REPO / "labeling_configs" / "sft.xml").read_text()
    ask = {"project": "22.1767225600", "tasks": [{"data": {"prompt": "Where is my parcel?"}}], "label_config": xml}
    with caplog.at_level(logging.INFO, logger="studio.mlbackend"):
        assert backend.predict(ask) == {"results": []}
    assert any("no pre-annotations for instruction -> response" in r.getMessage() for r in caplog.records)
