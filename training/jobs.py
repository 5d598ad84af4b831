"""Background training jobs: a separate process per run, so a page reload never loses a training.

The job folders, the lock and the job lifecycle (start a process, read its status, cancel it) live in
training/job_control.py; its API is re-exported here. This module holds what the job process does:
`run_job` reads the job's request.json and trains (kind 'train') or cross-validates (kind 'crossval',
training/crossval.py), keeping status.json current.

Entry points: `python -m training.jobs run <job_dir> [--lock-fd N]` (the job process), and
`python -m training.jobs train --curated <version> --runs-root <runs>`, one run in the foreground, also on several
processes under `accelerate launch --multi_gpu -m` (the README's command; training/distributed.py).
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
from training.distributed import finish, is_main_process, rank, world_size
from training.job_control import (ACTIVE, CANCEL_FILE, LOCK_FILE, STATES, STATUS_FILE, JobInfo, cancel_job,
                                  current_job, get_job, launch_job, list_jobs, update_status, utc_now)
from training.runs import RunRegistry
from training.sft_config import SFTConfig
from training.train import TrainingCancelled, curve_points, run_training, tqdm_progress

#: The API the app and the CLI call (training/job_control.py), re-exported so callers import it from here.
__all__ = ["ACTIVE", "CANCEL_FILE", "LOCK_FILE", "STATES", "STATUS_FILE", "JobInfo", "cancel_job", "current_job",
           "get_job", "launch_job", "list_jobs", "run_job", "start_job", "config_from_request", "CONFIG_SECTIONS"]


# -- the API the app and the CLI call --------------------------------------------------------------------------
#: The settings sections a training job can carry, by their name in request.json (the section's SECTION).
CONFIG_SECTIONS: dict[str, type[TrainConfig] | type[SFTConfig]] = {"train": TrainConfig, "sft": SFTConfig}


def start_job(curated_folder: str | Path, *, config: TrainConfig | SFTConfig, jobs_root: str | Path,
              runs_root: str | Path, promote: bool = True, cache_dir: str | Path | None = None,
              models_dir: str | Path | None = None) -> JobInfo:
    """Start training in a background process and return at once (state 'queued').

    config: [train] settings (TrainConfig) for classification and spans data, [sft] (SFTConfig) for generation;
    request.json records the section's name and the job rebuilds the same class.
    Validates the curated data first (EmptyDataError/DataError come back here, not in a log file), and that the
    config's section is the one the data's task kind trains with (ConfigError).
    Raises JobAlreadyRunning(job_id=...) while another job holds the lock, from any process.
    promote: make the new run the current model when it succeeds (never on failure or cancel).
    models_dir (generation): where the default base model is converted (training/llm.py).
    """
    from training.train import _config_for

    curated = load_curated(curated_folder)
    _config_for(curated.task, config)
    return launch_job(jobs_root, {
        "kind": "train", "curated": str(Path(curated_folder).resolve()),
        "runs_root": str(Path(runs_root).resolve()), "config": config.to_dict(), "config_section": config.SECTION,
        "promote": promote, "cache_dir": str(Path(cache_dir).resolve()) if cache_dir else None,
        "models_dir": str(Path(models_dir).resolve()) if models_dir else None,
    })


def config_from_request(request: dict[str, Any]) -> TrainConfig | SFTConfig:
    """The settings a job's request.json carries, as the class its section names (requests written before
    sections were recorded are [train])."""
    from studio.errors import ConfigError, did_you_mean

    section = str(request.get("config_section") or "train")
    if section not in CONFIG_SECTIONS:
        raise ConfigError(f"request.json names the settings section {section!r}; a training job knows "
                          f"{', '.join(CONFIG_SECTIONS)}." + did_you_mean(section, CONFIG_SECTIONS),
                          hint="start the job again with start_job()")
    return CONFIG_SECTIONS[section].from_dict(request.get("config"))


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
            tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)  # counted where the Trainer is asked to
            rate = round(tokens / (now - self.started), 1) if tokens and now > self.started else None
            update_status(folder, phase=phase(), step=done, max_steps=total, epoch=state.epoch or 0.0,
                          eta_s=None if eta is None else round(eta, 1), tokens_per_s=rate, loss=self.loss,
                          evals=self.evals)

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
    main = is_main_process()
    write = update_status if main else (lambda *a, **k: {})
    signal.signal(signal.SIGTERM, _terminate)
    request = json.loads((folder / "request.json").read_text(encoding="utf-8"))
    write(folder, state="running", phase="preparing", pid=os.getpid(), started=utc_now())
    try:
        if request.get("kind", "train") == "crossval":
            if world_size() > 1:  # its folds write as they go, on one process; the other ranks would never join
                from studio.errors import ConfigError

                raise ConfigError("A cross-validation job runs on one process, not under `accelerate launch`.",
                                  hint=f"run it with `python -m training.jobs run {folder}`")
            output = _run_crossval(folder, request)
            done: dict[str, Any] = {"output": output}
        else:
            curated = load_curated(request["curated"])
            run_id = RunRegistry(request["runs_root"]).new_run_id(curated.version_id)
            write(folder, pending_run_id=run_id)
            phase = {"text": "training"}

            def on_phase(text: str) -> None:  # after training (evaluating, saving): shown as the job's phase
                phase["text"] = text
                write(folder, phase=text)

            info = run_training(
                curated, config=config_from_request(request), runs_root=request["runs_root"],
                should_stop=lambda: (folder / CANCEL_FILE).exists(),
                callbacks=[_status_callback(folder, phase=lambda: phase["text"])] if main else [],
                cache_dir=request.get("cache_dir"), run_id=run_id, promote=bool(request.get("promote")) and main,
                models_dir=request.get("models_dir"), on_phase=on_phase,
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


def _train_command(args: argparse.Namespace) -> int:
    """`train`: one run of a curated data version in this process, or in each rank of `accelerate launch`."""
    from studio.config import load_config
    from studio.errors import ConfigError, DataError

    try:
        cfg = load_config(args.config)
        curated = load_curated(args.curated)
        section = cfg.sft if curated.task == "generation" else cfg.train
        info = run_training(curated, config=section, runs_root=args.runs_root,
                            progress=tqdm_progress() if is_main_process() else None,
                            cache_dir=cfg.state_dir / "cache", models_dir=cfg.state_dir / "models")
    except (ConfigError, DataError) as exc:  # the settings or the data: the message and its fix, no traceback
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    if is_main_process():
        print(f"run {info.id}: {info.status} {info.metrics}", flush=True)
    else:  # one line per rank, so a log shows that every rank trained (tests/training/test_multiprocess.py)
        print(f"rank {rank()} of {world_size()}: trained run {info.id} for {info.metrics['global_step']} steps; "
              "rank 0 writes it", flush=True)
    finish()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.jobs")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a prepared job folder (start_job writes it)")
    run.add_argument("job_dir", type=Path)
    run.add_argument("--lock-fd", type=int, default=None, help="inherited, already locked, lock file descriptor")
    direct = sub.add_parser("train", help="train a curated data version in this process (e.g. under "
                                          "`accelerate launch`), with the [train] settings of studio.toml "
                                          "([sft] for generation data)")
    direct.add_argument("--curated", type=Path, required=True, help="a data version folder (studio curate)")
    direct.add_argument("--runs-root", type=Path, required=True)
    direct.add_argument("--config", default=None, help="studio.toml (default: ./studio.toml)")
    args = parser.parse_args(argv)
    # Under `accelerate launch` every rank runs this; the others log warnings only, so nothing shows twice.
    logging.basicConfig(level=logging.INFO if is_main_process() else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "train":
        return _train_command(args)
    # The inherited descriptor stays open (and locked) until the job's outcome is known.
    return run_job(args.job_dir, lock_fd=args.lock_fd)


if __name__ == "__main__":
    sys.exit(main())
