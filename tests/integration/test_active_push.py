"""After a push, Label Studio itself serves the least certain task next; older studio versions (runs, fast
learner) are removed."""

import numpy as np
import pytest

from studio.labeling import parse_labeling_config
from studio.pool import push_pool, score_pool
from studio.snapshot import SnapshotStore
from studio.sync import sync_project

pytestmark = pytest.mark.labelstudio


def test_push_sets_uncertainty_order_and_replaces_old_versions(ls_client, project, tmp_path):
    schema = parse_labeling_config(project.label_config)
    texts = [f"query number {i}" for i in range(8)]
    ls_client.import_tasks(project.id, [{"data": {"text": t}} for t in texts])
    snap = sync_project(ls_client, SnapshotStore(tmp_path), project.id).snapshot
    pool = snap.tasks[["task_id", "text"]]
    rng = np.random.default_rng(0)
    top = 0.6 + 0.04 * np.arange(len(pool))
    probs = np.stack([top, (1 - top) * 0.7, (1 - top) * 0.3], axis=1)  # margins from 0.32 up
    probs[5] = [0.34, 0.33, 0.33]                                         # the least certain task
    old = score_pool(pool, rng.dirichlet([1, 1, 1], size=len(pool)), schema.kind, strategy="margin",
                     n=3, model_version="run-old")
    push_pool(ls_client, project.id, old, schema)
    scored = score_pool(pool, probs, schema.kind, strategy="margin", n=3, model_version="run-new")
    assert scored.batch["task_id"].iloc[0] == pool["task_id"].iloc[5]
    result = push_pool(ls_client, project.id, scored, schema)
    assert (result["pushed"], result["old_predictions_removed"]) == (8, 8)
    assert ls_client.model_versions(project.id) == ["run-new"]
    served = ls_client.next_task(project.id)
    assert served["id"] == int(pool["task_id"].iloc[5])
    assert served["predictions"][0]["model_version"] == "run-new"
    info = ls_client.request("GET", f"api/projects/{project.id}")
    assert info["sampling"] == "Uncertainty sampling" and info["model_version"] == "run-new"
    # The fast learner's version replaces a run's (and the other way round): one studio version at a time.
    fast = score_pool(pool, probs, schema.kind, strategy="margin", n=3, model_version="fast-snap1")
    assert push_pool(ls_client, project.id, fast, schema)["old_predictions_removed"] == 8
    assert ls_client.model_versions(project.id) == ["fast-snap1"]
