"""The queue annotators really get, measured against the real Label Studio: after a push, what Label Studio serves
next is the strategy's order (the default diverse_margin batch first, not the margin order), a task the model is
unsure of is served with no pre-selected answer, and labeled tasks leave the "Most uncertain" tab."""

import numpy as np
import pytest

from studio.active import DEFAULT_STRATEGY
from studio.labeling import parse_labeling_config
from studio.pool import UNCERTAIN_TAB, push_pool, score_pool
from studio.snapshot import SnapshotStore
from studio.sync import sync_project

pytestmark = pytest.mark.labelstudio
N, BATCH, THRESHOLD = 24, 4, 0.8


def predictions_of(client, task_id: int) -> list[dict]:
    return client.request("GET", "api/predictions/", params={"task": task_id})


def tab_ids(client, project_id: int) -> list[int]:
    view = next(v for v in client.request("GET", "api/dm/views", params={"project": project_id})
                if v["data"]["title"] == UNCERTAIN_TAB)
    return client.view_task_ids(project_id, view["id"])


def pool_model(pool):
    """Hand-made model output: (N, 3) probabilities whose top-1 runs from 0.36 to 0.96 in a shuffled task order,
    and embeddings in six tight clusters, the three least certain tasks in one of them (so the diverse batch takes
    one of those three, where margin order would take all three)."""
    rng = np.random.default_rng(7)
    order = rng.permutation(len(pool))                  # order[j] = the task with the j-th lowest top-1
    top1 = np.empty(len(pool))
    top1[order] = np.linspace(0.36, 0.96, len(pool))
    probs = np.empty((len(pool), 3))
    for i, p in enumerate(top1):
        probs[i] = (1 - p) / 2
        probs[i, i % 3] = p
    centres = np.eye(8)[:6] * 3.0
    cluster = np.empty(len(pool), dtype=int)
    cluster[order[:3]] = 0
    cluster[order[3:]] = 1 + np.arange(len(pool) - 3) % 5
    x = centres[cluster] + rng.normal(scale=0.01, size=(len(pool), 8))
    return probs, (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_label_studio_serves_the_default_strategys_batch_in_order(ls_client, project, tmp_path):
    schema = parse_labeling_config(project.label_config)
    ls_client.import_tasks(project.id, [{"data": {"text": f"customer query {i}"}} for i in range(N)])
    snap = sync_project(ls_client, SnapshotStore(tmp_path), project.id).snapshot
    pool = snap.tasks[["task_id", "text"]].reset_index(drop=True)
    probs, embeddings = pool_model(pool)
    scored = score_pool(pool, probs, schema.kind, strategy=DEFAULT_STRATEGY, n=BATCH, embeddings=embeddings,
                        model_version="fast-queue1")
    batch = scored.batch["task_id"].tolist()
    by_margin = scored.pool.sort_values("confidence")["task_id"].tolist()
    assert DEFAULT_STRATEGY == "diverse_margin" and batch != by_margin[:BATCH]  # the test tells the two apart
    ranked = scored.pool["task_id"].tolist()
    top1 = dict(zip(scored.pool["task_id"], scored.pool["top1"]))
    unsure = {t for t, p in top1.items() if p < THRESHOLD}
    assert set(batch) <= unsure and 0 < len(unsure) < N

    result = push_pool(ls_client, project.id, scored, schema, threshold=THRESHOLD)
    assert result == {"pushed": N, "old_predictions_removed": 0, "preselected": N - len(unsure),
                      "order_only": len(unsure), "threshold": THRESHOLD}
    # What Label Studio stores: the queue position as the score; no answer below the threshold, the model's
    # answer with its probability on the result at or above it.
    for rank, task in enumerate(ranked):
        (prediction,) = predictions_of(ls_client, task)
        assert prediction["score"] == pytest.approx(rank / N) and prediction["model_version"] == "fast-queue1"
        if task in unsure:
            assert prediction["result"] == []
        else:
            (item,) = prediction["result"]
            assert item["value"]["choices"] == [scored.pool.set_index("task_id").loc[task, "label"]]
            assert item["score"] == pytest.approx(top1[task])
    assert tab_ids(ls_client, project.id) == ranked  # the Data Manager tab agrees with the served order

    served = []
    for _ in range(BATCH + 1):
        task = ls_client.next_task(project.id)
        served.append(task["id"])
        (prediction,) = task["predictions"]
        assert prediction["result"] == [] and task["id"] in unsure  # ordered, nothing pre-selected
        ls_client.create_annotation(task["id"], schema.result("cards"))
    assert served[:BATCH] == batch and served == ranked[:BATCH + 1]
    assert tab_ids(ls_client, project.id) == ranked[BATCH + 1:]  # labeled tasks left the tab


def test_a_second_push_of_the_same_model_replaces_its_order(ls_client, project, tmp_path):
    """Another strategy on the same snapshot (same model_version): Label Studio serves the new order, and each
    task keeps one prediction (two would be ordered by the lower score)."""
    schema = parse_labeling_config(project.label_config)
    ls_client.import_tasks(project.id, [{"data": {"text": f"query {i}"}} for i in range(12)])
    snap = sync_project(ls_client, SnapshotStore(tmp_path), project.id).snapshot
    pool = snap.tasks[["task_id", "text"]].reset_index(drop=True)
    probs, embeddings = pool_model(pool)
    first = score_pool(pool, probs, schema.kind, strategy="random", n=3, model_version="fast-same", seed=1)
    push_pool(ls_client, project.id, first, schema, threshold=THRESHOLD)
    assert ls_client.next_task(project.id)["id"] == first.batch["task_id"].iloc[0]
    ls_client.create_annotation(first.batch["task_id"].iloc[0], schema.result("billing"))
    second = score_pool(pool, probs, schema.kind, strategy="margin", n=3, model_version="fast-same")
    result = push_pool(ls_client, project.id, second, schema, threshold=THRESHOLD)
    assert result["old_predictions_removed"] == 12 and ls_client.model_versions(project.id) == ["fast-same"]
    assert all(len(predictions_of(ls_client, t)) == 1 for t in pool["task_id"])
    labeled = int(first.batch["task_id"].iloc[0])
    expected = next(t for t in second.pool["task_id"] if t != labeled)
    assert ls_client.next_task(project.id)["id"] == expected


WORDS = {"billing": "invoice refund charge", "cards": "card pin contactless", "transfers": "transfer iban wire"}


def test_new_annotations_refresh_the_fast_learners_queue(studio_config, project, ls_client):
    """With the ML backend connected, every [active] refresh_every annotations made in Label Studio make the
    backend refit the fast learner on a fresh sync and push the queue again, in the last push's strategy."""
    import time

    from studio.mlbackend import MLBackend, connect
    from studio.workspace import Workspace
    from tests.integration.test_mlbackend import serve

    studio_config.labelstudio.project_id = project.id
    studio_config.active.refresh_every = 3
    ws = Workspace(studio_config)
    schema = parse_labeling_config(project.label_config)
    tasks = []
    for i in range(30):
        label = list(WORDS)[i % 3]
        task = {"data": {"text": f"{WORDS[label]} question {i}"}}
        if i < 9:
            task["annotations"] = [{"result": schema.result(label)}]
        tasks.append(task)
    ls_client.import_tasks(project.id, tasks)
    first = ws.sync().snapshot
    scored = ws.active.score_pool(first, scorer="fast", n=4)
    assert scored.strategy == DEFAULT_STRATEGY and scored.model_version == f"fast-{first.id}"
    ws.active.push_pool(scored)

    backend = MLBackend(ws)
    server, url = serve(backend)
    try:
        connect(ws, project.id, url)
        hooks = ls_client.request("GET", "api/webhooks/", params={"project": project.id})
        assert [h["url"] for h in hooks] == [f"{url}/webhook"]
        connect(ws, project.id, url)  # idempotent: still one webhook
        assert len(ls_client.request("GET", "api/webhooks/", params={"project": project.id})) == 1
        for _ in range(3):  # an annotator labels the first three tasks served
            task = ls_client.next_task(project.id)
            label = next(k for k, v in WORDS.items() if task["data"]["text"].startswith(v))
            ls_client.create_annotation(task["id"], schema.result(label))
        project_backend = backend.backend()
        deadline = time.monotonic() + 60
        while not project_backend.refreshes and time.monotonic() < deadline:
            time.sleep(0.5)
        assert project_backend.wait_refresh(180)
        assert "webhook" in backend.calls
    finally:
        server.shutdown()
    assert project_backend.refreshes and project_backend.refreshes[-1].startswith("refreshed"), \
        project_backend.refreshes
    latest = ws.latest_snapshot(project.id)
    assert latest.id != first.id and ls_client.model_versions(project.id) == [f"fast-{latest.id}"]
    last = ws.active.last_push()
    assert last["model_version"] == f"fast-{latest.id}" and last["strategy"] == DEFAULT_STRATEGY
    assert last["n"] == 4 and last["pushed"] == 30 - 9 - 3  # the pool without the three just labeled
    info = ls_client.request("GET", f"api/projects/{project.id}")
    assert info["model_version"] == f"fast-{latest.id}"
