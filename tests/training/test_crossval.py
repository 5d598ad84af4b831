"""Cross-validated probabilities of the fine-tuned model: real (tiny) trainings, in process and as a job."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from studio.assess import load_crossval, save_crossval
from studio.errors import DataError, EmptyDataError
from training.config import TrainConfig
from training.crossval import cross_val_probs, start_crossval_job
from training.jobs import get_job
from training.train import TrainingCancelled

pytestmark = [pytest.mark.training, pytest.mark.slow]


def quick(model: str) -> TrainConfig:
    return TrainConfig(base_model=model, epochs=1, batch_size=16, max_length=32)


def test_every_row_is_scored_by_the_fold_that_never_saw_it(tmp_path, tiny_model, helpers) -> None:
    texts, labels = helpers.make_texts(60, 5)
    seen: list[tuple[int, int]] = []
    folds: list[tuple[int, int]] = []
    probs, warnings = cross_val_probs(texts, labels, helpers.CLASSES, work_root=tmp_path, config=quick(tiny_model),
                                      folds=3, progress=lambda d, t: seen.append((d, t)),
                                      on_fold=lambda i, k: folds.append((i, k)))
    assert probs.shape == (60, 3) and warnings == []
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert folds == [(1, 3), (2, 3), (3, 3)]
    assert seen and seen[-1][0] == seen[-1][1]  # the bar ends full
    assert list(tmp_path.iterdir()) == []  # fold scratch folders are removed


def test_bad_labels_fail_before_training_and_cancel_is_clean(tmp_path, tiny_model, helpers) -> None:
    texts, labels = helpers.make_texts(30, 6)
    with pytest.raises(EmptyDataError, match="single class"):
        cross_val_probs(texts, np.zeros(30, int), helpers.CLASSES, work_root=tmp_path, config=quick(tiny_model))
    with pytest.raises(TrainingCancelled, match="fold 1 of"):
        cross_val_probs(texts, labels, helpers.CLASSES, work_root=tmp_path, config=quick(tiny_model),
                        should_stop=lambda: True)
    assert list(tmp_path.iterdir()) == []


def test_stored_probabilities_are_used_only_for_the_same_tasks_and_labels(tmp_path) -> None:
    ids, labels = np.array([7, 3, 9]), np.array([0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert load_crossval(tmp_path, ids, labels, 2) == (None, {}, None)  # none stored yet
    save_crossval(tmp_path, ids, labels, probs, {"folds": 5})
    order = np.array([9, 7, 3])  # any order of the same tasks
    got, meta, why = load_crossval(tmp_path, order, labels[[2, 0, 1]], 2)
    np.testing.assert_allclose(got, probs[[2, 0, 1]])
    assert meta["folds"] == 5 and why is None
    assert "other labels" in load_crossval(tmp_path, ids, np.array([0, 0, 1]), 2)[2]
    assert "cover every" in load_crossval(tmp_path, np.array([7, 3, 10]), labels, 2)[2]


def test_crossval_job_writes_probabilities_the_quality_step_can_read(tmp_path, tiny_model, helpers) -> None:
    texts, labels = helpers.make_texts(45, 7)
    rows = pd.DataFrame({"task_id": np.arange(100, 145), "text": texts, "label": labels,
                         "exclude": np.arange(45) < 5})  # e.g. labels the checks flagged
    jobs_root, output = tmp_path / "jobs", tmp_path / "quality" / "snap-1"
    job = start_crossval_job(rows, helpers.CLASSES, output=output, config=quick(tiny_model), jobs_root=jobs_root,
                             folds=3, meta={"snapshot_id": "snap-1"})
    assert job.kind == "crossval"
    deadline = time.monotonic() + 240
    while job.active and time.monotonic() < deadline:
        time.sleep(0.5)
        job = get_job(job.id, jobs_root=jobs_root)
    assert job.state == "succeeded", job.error + job.traceback + job.log_file.read_text()[-2000:]
    probs, meta, why = load_crossval(output, rows["task_id"].to_numpy(), labels, 3)
    assert why is None and probs.shape == (45, 3)
    assert meta["snapshot_id"] == "snap-1" and meta["folds"] == 3 and job.output.endswith("crossval_probs.parquet")
    assert not list(jobs_root.glob(".crossval-input-*"))  # the job's input moved into its folder


def test_excluded_labels_are_not_learned_from_but_still_scored(tmp_path, tiny_model, helpers) -> None:
    texts, labels = helpers.make_texts(45, 8)
    excluded = labels == 2  # even a whole class: its rows still get probabilities
    probs, _ = cross_val_probs(texts, labels, helpers.CLASSES, work_root=tmp_path, config=quick(tiny_model),
                               folds=3, exclude=excluded)
    assert probs.shape == (45, 3) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    with pytest.raises(DataError, match="one flag per label"):
        cross_val_probs(texts, labels, helpers.CLASSES, work_root=tmp_path, exclude=excluded[:5])
