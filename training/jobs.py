"""Background training jobs: a separate process per run, so a page reload never loses a training.

The job folders, the lock and the job lifecycle (start a process, read its status, cancel it) live in
training/job_control.py; its API is re-exported here. This module holds what the job process does:
`run_job` reads the job's request.json and trains (kind 'train') or cross-validates (kind 'crossval',
training/crossval.py), keeping status.json current.

Entry point: `python -m training.jobs run <job_dir> [--lock-fd N]` (also under `accelerate launch -m`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from training.config import TrainConfig
from training.crossval import run_crossval_request
from training.data import load_curated
from training.job_control import (ACTIVE, CANCEL_FILE, LOCK_FILE, STATES, STATUS_FILE, JobInfo, cancel_job,
                                  current_job, get_job, launch_job, list_jobs, update_status, utc_now)
from training.runs import RunRegistry
from training.train import TrainingCancelled, curve_points, run_training, tqdm_progress

#: The API the app and the CLI call (training/job_control.py), re-exported so callers import it from here.
__all__ = ["ACTIVE", "CANCEL_FILE", "LOCK_FILE", "STATES", "STATUS_FILE", "JobInfo", "cancel_job", "current_job",
           "get_job", "launch_job", "list_jobs", "run_job", "start_job"]


# -- the API the app and the CLI call --------------------------------------------------------------------------
def start_job(curated_folder: str | Path, *, config: TrainConfig, jobs_root: str | Path, runs_root: str | Path,
              promote: bool = True, cache_dir: str | Path | None = None) -> JobInfo:
    """Start training in a background process and return at once (state 'queued').

    Validates the curated data first (EmptyDataError/DataError come back here, not in a log file).
    Raises JobAlreadyRunning(job_id=...) while another job holds the lock, from any process.
    promote: make the new run the current model when it succeeds (never on failure or cancel).
    """
    load_curated(curated_folder)
    return launch_job(jobs_root, {
        "kind": "train", "curated": str(Path(curated_folder).resolve()),
        "runs_root": str(Path(runs_root).resolve()), "config": config.to_dict(), "promote": promote,
        "cache_dir": str(Path(cache_dir).resolve()) if cache_dir else None,
    })


# -- the job process -----------------------------------------------------------------------------------------
def _status_callback(folder: Path, phase: Any = lambda: "training") -> Any:
    from transformers import TrainerCallback

    class JobStatusCallback(TrainerCallback):
        """Mirrors Trainer progress into status.json (at most every second, plus every log and eval)."""

        def __init__(self) -> None:
            self.started = time.monotonic()
            self.last_write = 0.0
            self.loss: list[dict[str, Any]] = []
            self.evals: list[dict[str, Any]] = []

        def _write(self, state: Any, force: bool = False) -> None:
            now = time.monotonic()
            if not force and now - self.last_write < 1.0:
                return
            self.last_write = now
            done, total = state.global_step, state.max_steps
            eta = (now - self.started) / done * (total - done) if done else None
            update_status(folder, phase=phase(), step=done, max_steps=total, epoch=state.epoch or 0.0,
                          eta_s=None if eta is None else round(eta, 1), loss=self.loss, evals=self.evals)

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.monotonic()
            self.loss, self.evals = [], []  # a new training (the next fold of a cross-validation)
            self._write(state, force=True)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._write(state)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            # on_log gets the figures without the step that log_history adds: add it (and the epoch) here.
            loss, evals = curve_points({**(logs or {}), "step": state.global_step, "epoch": state.epoch},
                                       metrics=None)
            if loss is not None:
                self.loss.append(loss)
            if evals is not None:
                self.evals.append(evals)
            self._write(state, force=True)

    return JobStatusCallback()


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through run_training, which cleans its tmp folder


def run_job(folder: Path, *, lock_fd: int | None = None) -> int:
    """Run the job described by folder/request.json; keep status.json current. Returns the exit code.

    lock_fd: the inherited locked descriptor. It is closed just before the final state is written, so a
    caller that sees a finished state can start the next job at once.
    """
    main = int(os.environ.get("RANK", "0")) == 0
    write = update_status if main else (lambda *a, **k: {})
    signal.signal(signal.SIGTERM, _terminate)
    request = json.loads((folder / "request.json").read_text(encoding="utf-8"))
    write(folder, state="running", phase="preparing", pid=os.getpid(), started=utc_now())
    try:
        if request.get("kind", "train") == "crossval":
            output = _run_crossval(folder, request) if main else ""
            done: dict[str, Any] = {"output": output}
        else:
            curated = load_curated(request["curated"])
            run_id = RunRegistry(request["runs_root"]).new_run_id(curated.version_id)
            write(folder, pending_run_id=run_id)
            info = run_training(
                curated, config=TrainConfig.from_dict(request["config"]), runs_root=request["runs_root"],
                should_stop=lambda: (folder / CANCEL_FILE).exists(), callbacks=[_status_callback(folder)],
                cache_dir=request.get("cache_dir"), run_id=run_id, promote=bool(request.get("promote")) and main,
            )
            done = {"run_id": info.id, "metrics": info.metrics}
    except (TrainingCancelled, KeyboardInterrupt) as exc:
        _release(lock_fd)
        write(folder, state="cancelled", phase="done", error=str(exc) or "cancelled")
        return 1
    except BaseException as exc:  # the job must report every failure before it exits
        _release(lock_fd)
        write(folder, state="failed", phase="done", error=f"{type(exc).__name__}: {exc}",
              traceback="".join(traceback.format_exc().splitlines(keepends=True)[-30:]))
        traceback.print_exc()
        return 2
    _release(lock_fd)
    write(folder, state="succeeded", phase="done", **done)
    return 0


def _run_crossval(folder: Path, request: dict[str, Any]) -> str:
    """The crossval job's work, with the fold shown as the job's phase; returns the stored file."""
    fold = {"text": "fold"}

    def on_fold(i: int, k: int) -> None:
        fold["text"] = f"fold {i}/{k}"
        update_status(folder, phase=fold["text"], step=0, max_steps=0, loss=[], evals=[])

    return run_crossval_request(request, work_root=folder, should_stop=lambda: (folder / CANCEL_FILE).exists(),
                                on_fold=on_fold, callbacks=[_status_callback(folder, phase=lambda: fold["text"])],
                                job_id=folder.name)


def _release(lock_fd: int | None) -> None:
    if lock_fd is not None:
        try:
            os.close(lock_fd)
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.jobs")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a prepared job folder (start_job writes it)")
    run.add_argument("job_dir", type=Path)
    run.add_argument("--lock-fd", type=int, default=None, help="inherited, already locked, lock file descriptor")
    direct = sub.add_parser("train", help="train a curated data version in this process (e.g. under "
                                          "`accelerate launch`), with the [train] settings of studio.toml")
    direct.add_argument("--curated", type=Path, required=True, help="a data version folder (studio curate)")
    direct.add_argument("--runs-root", type=Path, required=True)
    direct.add_argument("--config", default=None, help="studio.toml (default: ./studio.toml)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "train":
        from studio.config import load_config

        cfg = load_config(args.config)
        info = run_training(args.curated, config=cfg.train, runs_root=args.runs_root, progress=tqdm_progress(),
                            cache_dir=cfg.state_dir / "cache")
        print(f"run {info.id}: {info.status} {info.metrics}")
        return 0
    # The inherited descriptor stays open (and locked) until the job's outcome is known.
    return run_job(args.job_dir, lock_fd=args.lock_fd)


if __name__ == "__main__":
    sys.exit(main())
