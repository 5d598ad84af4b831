"""Background jobs in real subprocesses: success, the cross-process lock, cancel, and a killed job."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from studio.errors import JobAlreadyRunning
from training.config import TrainConfig
from training.crossval import start_crossval_job
from training.jobs import LOCK_FILE, cancel_job, current_job, get_job, list_jobs, start_job
from training.runs import RunRegistry

pytestmark = [pytest.mark.training, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def roots(tmp_path_factory, curated, helpers):
    base = tmp_path_factory.mktemp("jobs")
    folder = helpers.write_curated(curated, base / "curated")
    return folder, base / "jobs", base / "runs"


def wait_for(job_id: str, jobs_root: Path, predicate, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get_job(job_id, jobs_root=jobs_root)
        if predicate(job):
            return job
        time.sleep(0.3)
    log = (jobs_root / job_id / "log.txt").read_text()[-3000:]
    raise AssertionError(f"job {job_id} stuck in {job.state} (step {job.step}); log tail:\n{log}")


def long_config(model: str) -> TrainConfig:
    # Many epochs on 90 rows: runs long enough to be caught mid-training, however slow the machine.
    return TrainConfig(base_model=model, epochs=500, batch_size=8, max_length=32, early_stopping_patience=0)


def lock_is_free(jobs_root: Path, timeout: float = 10.0) -> bool:
    """True once the job lock can be taken (processes release it as they exit, which takes a moment)."""
    deadline = time.monotonic() + timeout
    with open(jobs_root / LOCK_FILE, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.2)
                continue
            fcntl.flock(handle, fcntl.LOCK_UN)
            return True


def test_job_succeeds_registers_and_promotes(roots, tiny_model):
    curated, jobs_root, runs_root = roots
    job = start_job(curated, config=TrainConfig(base_model=tiny_model, epochs=1, batch_size=16, max_length=32),
                    jobs_root=jobs_root, runs_root=runs_root)
    assert job.state in ("queued", "running")
    done = wait_for(job.id, jobs_root, lambda j: not j.active)
    assert done.state == "succeeded", done.error + done.traceback
    assert done.step == done.max_steps == 6 and done.loss and done.evals
    assert (runs_root / done.run_id / "adapter").is_dir()
    assert RunRegistry(runs_root).current().id == done.run_id
    assert current_job(jobs_root=jobs_root).id == job.id
    assert lock_is_free(jobs_root)


def start_long_job(roots, tiny_model):
    """Start a job that runs long enough to interfere with; return it once it is stepping, with the registry
    and what it held before (current run, finished run ids)."""
    curated, jobs_root, runs_root = roots
    registry = RunRegistry(runs_root)
    before = registry.current()
    finished_runs = {r.id for r in registry.list(include_failed=False)}
    job = start_job(curated, config=long_config(tiny_model), jobs_root=jobs_root, runs_root=runs_root)
    running = wait_for(job.id, jobs_root, lambda j: j.state == "running" and j.step > 0)
    return job, running, registry, before, finished_runs


def assert_previous_model_untouched(registry, runs_root, jobs_root, before, finished_runs) -> None:
    assert {r.id for r in registry.list(include_failed=False)} == finished_runs
    assert not [p for p in runs_root.iterdir() if p.name.startswith(".tmp-")]
    assert registry.current() == before
    assert lock_is_free(jobs_root)


def test_lock_holds_across_processes_and_cancel_keeps_current(roots, tiny_model):
    curated, jobs_root, runs_root = roots
    job, running, registry, before, finished_runs = start_long_job(roots, tiny_model)
    assert running.eta_s is not None and running.max_steps > running.step

    with pytest.raises(JobAlreadyRunning) as raised:
        start_job(curated, config=long_config(tiny_model), jobs_root=jobs_root, runs_root=runs_root)
    assert raised.value.job_id == job.id
    rows = pd.DataFrame({"task_id": [1, 2, 3, 4], "text": ["a", "b", "c", "d"], "label": [0, 1, 0, 1]})
    with pytest.raises(JobAlreadyRunning):  # cross-validation shares the lock: one job of either kind
        start_crossval_job(rows, ["x", "y"], output=jobs_root / "out", config=TrainConfig(), jobs_root=jobs_root)
    # A separate process (e.g. a second Streamlit session) sees the same lock.
    code = ("import sys; from studio.errors import JobAlreadyRunning; from training.jobs import start_job; "
            "from training.config import TrainConfig\n"
            "try:\n    start_job(sys.argv[1], config=TrainConfig(), jobs_root=sys.argv[2], runs_root=sys.argv[3])\n"
            "except JobAlreadyRunning as e:\n    print('HELD', e.job_id)")
    out = subprocess.run([sys.executable, "-c", code, str(curated), str(jobs_root), str(runs_root)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == f"HELD {job.id}", out.stderr[-2000:]
    assert len(list_jobs(jobs_root=jobs_root)) == 2  # the refused starts left no job folder

    cancelled = cancel_job(job.id, jobs_root=jobs_root, wait_s=60)
    assert cancelled.state == "cancelled"
    assert_previous_model_untouched(registry, runs_root, jobs_root, before, finished_runs)


def test_killed_job_is_marked_failed(roots, tiny_model):
    _, jobs_root, runs_root = roots
    job, running, registry, before, finished_runs = start_long_job(roots, tiny_model)
    os.kill(running.pid, signal.SIGKILL)
    dead = wait_for(job.id, jobs_root, lambda j: not j.active, timeout=30)
    assert dead.state == "failed" and "killed or crashed" in dead.error
    status = json.loads((jobs_root / job.id / "status.json").read_text())
    assert status["state"] == "failed"  # written back, not only computed on read
    assert_previous_model_untouched(registry, runs_root, jobs_root, before, finished_runs)


def test_status_callback_records_the_same_points_as_the_run_curve(tmp_path):
    """The live status (on_log: figures without the step) and the run's curve (log_history) parse entries alike."""
    from types import SimpleNamespace

    from training.jobs import _status_callback
    from training.train import _curve

    history = [{"loss": 1.5, "grad_norm": 2.0, "learning_rate": 1e-3, "epoch": 0.5, "step": 2},
               {"eval_loss": 1.1, "eval_macro_f1": 0.4, "eval_accuracy": 0.6, "epoch": 1.0, "step": 4},
               {"train_runtime": 3.0, "epoch": 1.0, "step": 4}]
    callback = _status_callback(tmp_path)
    for entry in history:
        state = SimpleNamespace(global_step=entry["step"], epoch=entry["epoch"], max_steps=4)
        callback.on_log(None, state, None, logs={k: v for k, v in entry.items() if k != "step"})
    status = json.loads((tmp_path / "status.json").read_text())
    curve = _curve(history)
    assert curve == {"loss": [{"step": 2, "epoch": 0.5, "loss": 1.5}],
                     "eval": [{"step": 4, "epoch": 1.0, "macro_f1": 0.4, "accuracy": 0.6, "loss": 1.1}]}
    assert (status["loss"], status["evals"], status["step"]) == (curve["loss"], curve["eval"], 4)


def test_status_callback_keeps_a_spans_runs_entity_scores(tmp_path):
    """A token-classification run logs entity F1, precision and recall: the live status keeps them for the page."""
    from types import SimpleNamespace

    from training.jobs import _status_callback

    callback = _status_callback(tmp_path)
    logs = {"eval_loss": 0.9, "eval_entity_f1": 0.31, "eval_precision": 0.4, "eval_recall": 0.25,
            "eval_runtime": 1.2, "eval_samples_per_second": 50.0, "epoch": 1.0}
    callback.on_log(None, SimpleNamespace(global_step=6, epoch=1.0, max_steps=6), None, logs=logs)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["evals"] == [{"step": 6, "epoch": 1.0, "entity_f1": 0.31, "precision": 0.4, "recall": 0.25,
                                "loss": 0.9}]
