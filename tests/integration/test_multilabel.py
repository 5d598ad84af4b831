"""A multi-label classification project (labeling_configs/multilabel_classification.xml) through the whole loop
against a real Label Studio: import with seeded label sets, a second annotator, sync and the validation report,
the exported data version, a few training steps, an uncertainty push that Label Studio serves least certain
first, the ML backend's pre-annotations, and the quality stage refusing the kind."""

import json
import uuid

import numpy as np
import pandas as pd
import pytest

from studio.errors import UnsupportedTaskKind
from studio.importer import build_tasks
from studio.labeling import parse_labeling_config
from studio.mlbackend import MLBackend
from studio.workspace import Workspace
from tests.conftest import REPO
from training.config import TrainConfig
from training.predict import load_predictor
from training.train import run_training

pytestmark = [pytest.mark.labelstudio, pytest.mark.training]

MULTI_XML = (REPO / "labeling_configs" / "multilabel_classification.xml").read_text()
CLASSES = ["billing", "cards", "transfers", "security", "account"]  # the config's order
WORDS = {"billing": ["invoice", "fee", "charge"], "cards": ["card", "pin", "contactless"],
         "transfers": ["transfer", "iban", "wire"], "security": ["fraud", "phishing", "stolen"],
         "account": ["password", "login", "profile"]}
FILLER = ["please", "help", "my", "the", "with", "today", "again", "why", "is", "not", "working", "need"]
N_LABELED, N_POOL = 32, 8


def make_rows(seed: int) -> pd.DataFrame:
    """N_LABELED + N_POOL distinct texts, each with the keywords of its 1-3 classes among filler words. Label cells
    alternate between a comma-separated string in reverse config order and a list; the pool rows have none."""
    rng = np.random.default_rng(seed)
    texts, cells, truth = [], [], []
    for i in range(N_LABELED + N_POOL):
        chosen = sorted(rng.choice(len(CLASSES), size=int(rng.integers(1, 4)), replace=False).tolist())
        names = [CLASSES[c] for c in chosen]
        words = [w for n in names for w in rng.choice(WORDS[n], size=2, replace=False)]
        words += list(rng.choice(FILLER, size=4, replace=False)) + [f"case{i}"]
        rng.shuffle(words)
        texts.append(" ".join(words))
        truth.append(names)
        if i >= N_LABELED:
            cells.append("")
        elif i % 2:
            cells.append(", ".join(reversed(names)))  # the importer reorders into config order
        else:
            cells.append(list(names))
    return pd.DataFrame({"text": texts, "labels": pd.Series(cells, dtype=object), "truth": truth})


def predictions_of(client, task_id: int) -> list[dict]:
    """A task's predictions in full (the export lists only their ids)."""
    return client.request("GET", "api/predictions/", params={"task": task_id})


def test_multilabel_project_through_the_loop(studio_config, ls_client, tiny_model):
    project = ls_client.create_project(f"multi-{uuid.uuid4().hex[:8]}", MULTI_XML)
    schema = parse_labeling_config(project.label_config)
    assert schema.kind.name == "multi_label" and list(schema.classes) == CLASSES

    # 1. Import: labels as comma-separated text or lists; the pool rows arrive without annotations.
    rows = make_rows(7)
    tasks = build_tasks(rows[["text", "labels"]], schema, label_column="labels")
    assert len(tasks) == N_LABELED + N_POOL
    assert sum("annotations" in t for t in tasks) == N_LABELED
    assert tasks[1]["annotations"][0]["result"] == schema.result(rows["truth"][1])  # reordered into config order
    assert all("labels" not in t["data"] for t in tasks)  # the label column is labels, not task data
    ls_client.import_tasks(project.id, tasks)
    ids = {r["data"]["text"]: r["id"] for r in ls_client.export_tasks(project.id)}
    truth = {ids[t]: names for t, names in zip(rows["text"], rows["truth"])}
    labeled_ids = [ids[t] for t in rows["text"][:N_LABELED]]
    pool_ids = {ids[t] for t in rows["text"][N_LABELED:]}

    # A second annotator: agrees on two tasks (choosing in reverse order), adds a class on one, submits nothing
    # on another.
    alice_email = f"alice-multi-{uuid.uuid4().hex[:6]}@tests.local"
    alice = ls_client.create_user(alice_email)
    agreed, disputed, blank = labeled_ids[0], labeled_ids[2], labeled_ids[4]
    for task in (agreed, labeled_ids[1]):
        ls_client.create_annotation(task, schema.result(list(reversed(truth[task]))), completed_by=alice)
    extra = next(c for c in CLASSES if c not in truth[disputed])
    ls_client.create_annotation(disputed, schema.result([extra] + truth[disputed]), completed_by=alice)
    ls_client.create_annotation(blank, [], completed_by=alice)

    # 2. Sync into a workspace on this project.
    studio_config.labelstudio.project_id = project.id
    studio_config.train = TrainConfig(base_model=tiny_model, max_steps=3, epochs=1, batch_size=8,
                                      eval_batch_size=16, max_length=32, head_init="logreg")
    ws = Workspace(studio_config)
    snapshot = ws.sync().snapshot
    assert snapshot.schema.kind.name == "multi_label"
    assert len(snapshot.tasks) == N_LABELED + N_POOL and len(snapshot.annotations) == N_LABELED + 4
    assert alice_email in set(snapshot.annotations["annotator"])
    labeled = snapshot.labeled().set_index("task_id")
    assert "labels" in labeled.columns and "label" not in labeled.columns
    assert set(labeled.index) == set(labeled_ids)
    for task in labeled_ids:
        target = list(labeled.loc[task, "labels"])
        assert all(isinstance(c, str) for c in target), task
        assert target == sorted(target, key=CLASSES.index), task  # config order, whatever order was chosen
    assert all(list(labeled.loc[t, "labels"]) == truth[t] for t in labeled_ids if t != disputed)
    # Two annotators: each class chosen by at least half of them, so the extra class of one of two is kept.
    assert list(labeled.loc[disputed, "labels"]) == sorted(truth[disputed] + [extra], key=CLASSES.index)
    assert labeled.loc[disputed, "agreement"] == 0.5 and labeled.loc[disputed, "n_annotators"] == 2
    assert labeled.loc[agreed, "agreement"] == 1.0 and labeled.loc[agreed, "n_annotators"] == 2
    assert labeled.loc[blank, "n_annotators"] == 1  # the empty annotation is no vote
    problems = snapshot.validation.groupby("problem")["task_id"].apply(set).to_dict()
    assert problems == {"disagreement": {disputed}, "no_label": {blank}}
    detail = snapshot.validation.set_index("problem").loc["disagreement", "detail"]
    assert alice_email in detail and extra in detail

    # 3. Curate and export: the data version of a multi-label task.
    prepared = ws.curation.prepare(snapshot)
    export = prepared.export
    manifest = json.loads((export.path / "manifest.json").read_text())
    assert manifest["task"] == "multi_label" and manifest["class_names"] == CLASSES
    assert manifest["snapshot_id"] == snapshot.id
    frames = {s: pd.read_parquet(export.path / f"{s}.parquet") for s in ("train", "validation", "test")}
    assert sum(len(f) for f in frames.values()) == N_LABELED  # sampler "none": each labeled task once
    every = pd.concat(frames.values(), ignore_index=True)
    assert set(every["task_id"]) == set(labeled_ids) and not set(every["task_id"]) & pool_ids
    for task_id, vector in zip(every["task_id"], every["labels"]):
        vector = np.asarray(vector, dtype=float)
        assert vector.shape == (len(CLASSES),) and set(vector) <= {0.0, 1.0}, task_id
        assert [c for c, v in zip(CLASSES, vector) if v == 1.0] == list(labeled.loc[task_id, "labels"]), task_id
    from datasets import load_from_disk

    dataset = load_from_disk(str(export.path / "dataset"))
    assert set(dataset) == {"train", "validation", "test"}
    assert dataset["train"].num_rows == len(frames["train"])
    assert dataset["train"].features["labels"].length == len(CLASSES)
    assert all(len(v) == len(CLASSES) for v in dataset["train"]["labels"])

    # 4. Train a few steps: sigmoid outputs, one per class.
    run = run_training(export.path, config=studio_config.train, runs_root=ws.runs_root, promote=True)
    metrics = json.loads((run.path / "metrics.json").read_text())
    summary = metrics["summary"]
    assert summary["split"] in ("test", "validation") and 0.0 <= summary["macro_f1"] <= 1.0
    assert 0.0 <= summary["accuracy"] <= 1.0 and metrics["global_step"] == 3
    predictor = load_predictor(run.path)
    assert predictor.task == "multi_label" and list(predictor.class_names) == CLASSES
    pool_texts = list(rows["text"][N_LABELED:])
    probs = predictor.predict_proba(pool_texts)
    assert probs.shape == (N_POOL, len(CLASSES))
    assert np.all((probs >= 0.0) & (probs <= 1.0))
    assert not np.allclose(probs.sum(axis=1), 1.0)  # independent sigmoids, not a softmax

    # 5. Active learning: score the pool with the run, push, and Label Studio serves the least certain first.
    scored = ws.active.score_pool(snapshot, scorer="run", strategy="margin", n=3)
    assert scored.model_version == run.id and set(scored.pool["task_id"]) == pool_ids
    assert len(scored.batch) == 3
    by_text = dict(zip(pool_texts, probs))
    expected = {ids[t]: ([c for c, p in zip(CLASSES, row) if p >= 0.5], float(np.abs(2 * row - 1).min()))
                for t, row in by_text.items()}
    least = min(expected, key=lambda t: expected[t][1])
    assert scored.batch["task_id"].iloc[0] == least
    assert ws.active.push_pool(scored)["pushed"] == N_POOL
    assert ls_client.model_versions(project.id) == [run.id]
    rank = dict(zip(scored.pool["task_id"], scored.pool["rank"]))
    threshold = ws.cfg.active.preannotate_threshold
    for task_id in pool_ids:
        predictions = predictions_of(ls_client, task_id)
        assert len(predictions) == 1, task_id
        (prediction,) = predictions
        assert prediction["model_version"] == run.id
        assert prediction["score"] == pytest.approx(rank[task_id] / N_POOL), task_id  # its place in the queue
        top1 = (1 + expected[task_id][1]) / 2  # the probability of its least certain class decision
        if top1 < threshold:
            assert prediction["result"] == [], task_id  # unsure: ordered, nothing pre-selected
            continue
        (item,) = prediction["result"]
        assert item["type"] == "choices" and item["from_name"] == "topics" and item["to_name"] == "text"
        assert isinstance(item["value"]["choices"], list)
        assert item["value"]["choices"] == expected[task_id][0], task_id
        assert item["score"] == pytest.approx(top1, abs=1e-4), task_id
    served = ls_client.next_task(project.id)
    assert served["id"] == least
    assert served["predictions"][0]["model_version"] == run.id
    info = ls_client.request("GET", f"api/projects/{project.id}")
    assert info["sampling"] == "Uncertainty sampling" and info["model_version"] == run.id

    # 6. The ML backend's pre-annotations: choices lists from the current run.
    backend = MLBackend(ws)
    ask = {"tasks": [{"data": {"text": t}} for t in pool_texts[:3]], "label_config": project.label_config}
    answers = backend.predict(ask)["results"]
    assert len(answers) == 3
    for text, answer in zip(pool_texts[:3], answers):
        assert answer["model_version"] == run.id and 0.0 <= answer["score"] <= 1.0
        if (1 + expected[ids[text]][1]) / 2 < threshold:  # unsure: the same policy as the push
            assert answer["result"] == [], text
            continue
        (item,) = answer["result"]
        assert item["type"] == "choices" and item["value"]["choices"] == expected[ids[text]][0], text
        assert answer["score"] == pytest.approx(expected[ids[text]][1], abs=1e-4)

    # 7. Quality: not for this kind yet, and it says so.
    with pytest.raises(UnsupportedTaskKind) as refused:
        ws.quality.assess(snapshot)
    message = str(refused.value)
    assert "multi-label" in message and "multi_label" in message
    assert "label-quality checks" in message
    supported = message.split("the studio supports:")[1].split(".")[0]
    assert "quality" not in supported and "train" in supported  # what does work for this kind
    assert refused.value.hint  # and what to do instead
    assert ws.quality.assessment(snapshot) is None  # nothing half-written
