"""Background training jobs: a separate process per run, so a page reload never loses a training.

    <jobs_root>/train.lock          flock'ed by the running job process for its whole life; holds its job id
    <jobs_root>/<job_id>/status.json  state, step/max_steps, epoch, eta_s, loss and eval history, run_id, error
    <jobs_root>/<job_id>/log.txt      the process's stdout + stderr
    <jobs_root>/<job_id>/cancel       the cancel flag (the Trainer callback stops training when it appears)

The parent takes the lock, then hands the locked file descriptor to the child (pass_fds) and closes its own
copy: the lock is never free between "start" and "running", and the kernel frees it when the child dies,
however it dies. A job left 'running' by a dead process is marked failed the next time anyone reads it.

Entry point: `python -m training.jobs run <job_dir> [--lock-fd N]` (also under `accelerate launch -m`).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from studio.errors import JobAlreadyRunning, TrainingError
from training.config import TrainConfig
from training.data import load_curated
from training.runs import RunRegistry, write_json_atomic

LOCK_FILE = "train.lock"
STATUS_FILE = "status.json"
CANCEL_FILE = "cancel"
ACTIVE = ("queued", "running")
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
_PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class JobInfo:
    """A job as read from its status.json. `state` is one of STATES."""

    id: str
    state: str
    folder: Path
    pid: int | None = None
    phase: str = ""
    step: int = 0
    max_steps: int = 0
    epoch: float = 0.0
    eta_s: float | None = None
    loss: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    run_id: str = ""
    kind: str = "train"
    output: str = ""
    error: str = ""
    traceback: str = ""
    created: str = ""
    updated: str = ""

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def log_file(self) -> Path:
        return self.folder / "log.txt"


def _read_status(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / STATUS_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _update_status(folder: Path, **changes: Any) -> dict[str, Any]:
    status = _read_status(folder)
    status.update(changes, updated=_now())
    write_json_atomic(folder / STATUS_FILE, status)
    return status


def _info(folder: Path, status: dict[str, Any]) -> JobInfo:
    known = set(JobInfo.__dataclass_fields__) - {"folder", "id"}
    return JobInfo(id=folder.name, folder=folder, **{k: v for k, v in status.items() if k in known})


def _process_alive(pid: int) -> bool:
    """True while `pid` runs. Reaps it first if it is our own child, and treats a zombie as dead."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child (started by another process, e.g. before a page reload)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


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


def launch_job(jobs_root: str | Path, request: dict[str, Any], *, move_into_job: Path | None = None) -> JobInfo:
    """Take the lock, write the job folder (request.json, status 'queued') and start the job process.
    request['kind'] picks what run_job does: 'train', or 'crossval' (training/crossval.py). move_into_job: an
    input file that becomes <job>/rows.parquet (request['rows'] points there)."""
    root = Path(jobs_root)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise JobAlreadyRunning(f"Training job {holder} is still running; one job runs at a time.",
                                    job_id=holder, hint=f"wait for {holder} to finish, or cancel it") from None
        job_id = f"job-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        folder = root / job_id
        folder.mkdir()
        os.ftruncate(fd, 0)
        os.pwrite(fd, job_id.encode(), 0)
        if move_into_job is not None:  # the job's inputs live (and are cleaned up) with the job
            request["rows"] = str(move_into_job.replace(folder / "rows.parquet").resolve())
        write_json_atomic(folder / "request.json", request)
        _update_status(folder, state="queued", phase="starting", kind=request["kind"], created=_now(), step=0,
                       max_steps=0)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(_PROJECT_ROOT),
                                                                        os.environ.get("PYTHONPATH")])))
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("HF_DATASETS_OFFLINE", "1")
        try:
            with open(folder / "log.txt", "ab") as log_file:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "training.jobs", "run", str(folder), "--lock-fd", str(fd)],
                    pass_fds=(fd,), start_new_session=True, stdout=log_file, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, cwd=str(_PROJECT_ROOT), env=env,
                )
        except OSError as exc:
            _update_status(folder, state="failed", phase="done", error=f"could not start the job process: {exc}")
            raise TrainingError(f"Could not start the training process ({sys.executable}): {exc}",
                                hint="check that the studio's Python environment is intact") from exc
        (folder / "pid").write_text(str(proc.pid))
    finally:
        os.close(fd)  # the child keeps the lock through its inherited copy
    return get_job(job_id, jobs_root=root)


def get_job(job_id: str, *, jobs_root: str | Path) -> JobInfo:
    """Read a job's status; a job still 'running' whose process is gone is marked failed (or cancelled)."""
    folder = Path(jobs_root) / job_id
    if not (folder / STATUS_FILE).exists():
        raise TrainingError(f"No training job '{job_id}' under {jobs_root}.",
                            hint="list the jobs with list_jobs() and pick one of those ids")
    status = _read_status(folder)
    if status.get("state") in ACTIVE:
        pid_file = folder / "pid"
        pid = status.get("pid") or (int(pid_file.read_text()) if pid_file.exists() else None)
        if pid is not None and not _process_alive(int(pid)):
            status = _mark_dead(folder, status, int(pid))
    return _info(folder, status)


def _mark_dead(folder: Path, status: dict[str, Any], pid: int) -> dict[str, Any]:
    try:
        # Helpers the job forked (they inherit the lock) outlive a kill -9 of the job alone; the job leads
        # its own process group (start_new_session), so end the group and the lock is released.
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    cancelled = (folder / CANCEL_FILE).exists()
    state = "cancelled" if cancelled else "failed"
    error = ("cancelled; the process was stopped" if cancelled else
             f"the job process (pid {pid}) ended without reporting: it was killed or crashed")
    pending = status.get("pending_run_id")
    if pending:
        request = json.loads((folder / "request.json").read_text(encoding="utf-8"))
        # Removes the half-written .tmp- folder and leaves a failed/cancelled record in the registry.
        RunRegistry(request["runs_root"]).abort(pending, status=state, error=error)
    return _update_status(folder, state=state, error=error, pid=pid)


def list_jobs(*, jobs_root: str | Path) -> list[JobInfo]:
    """Every job, newest first."""
    root = Path(jobs_root)
    if not root.is_dir():
        return []
    folders = sorted((p for p in root.iterdir() if (p / STATUS_FILE).exists()), key=lambda p: p.name, reverse=True)
    return [get_job(p.name, jobs_root=root) for p in folders]


def current_job(*, jobs_root: str | Path) -> JobInfo | None:
    """The newest job (running or finished), so a reloaded page shows it; None before the first job."""
    jobs = list_jobs(jobs_root=jobs_root)
    return jobs[0] if jobs else None


def cancel_job(job_id: str, *, jobs_root: str | Path, wait_s: float | None = 20.0,
               term_wait_s: float = 10.0) -> JobInfo:
    """Ask a job to stop (cancel flag, checked every step); SIGTERM its process group if not gone in wait_s.

    wait_s=None only raises the flag and returns at once (for a UI that polls get_job afterwards).
    Returns the job as it stands after waiting (state 'cancelled' once the process has ended).
    """
    job = get_job(job_id, jobs_root=jobs_root)
    if not job.active:
        return job
    (job.folder / CANCEL_FILE).write_text(_now())
    if wait_s is None:
        return job
    for signum, wait in ((None, wait_s), (signal.SIGTERM, term_wait_s), (signal.SIGKILL, 5.0)):
        if signum is not None and job.pid:
            try:
                os.killpg(job.pid, signum)  # start_new_session made the job its own group leader
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            job = get_job(job_id, jobs_root=jobs_root)
            if not job.active:
                return job
            time.sleep(0.2)
    return get_job(job_id, jobs_root=jobs_root)


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
            _update_status(folder, phase=phase(), step=done, max_steps=total, epoch=state.epoch or 0.0,
                           eta_s=None if eta is None else round(eta, 1), loss=self.loss, evals=self.evals)

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.monotonic()
            self.loss, self.evals = [], []  # a new training (the next fold of a cross-validation)
            self._write(state, force=True)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._write(state)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            logs = logs or {}
            if "loss" in logs:
                self.loss.append({"step": state.global_step, "epoch": state.epoch, "loss": logs["loss"]})
            if "eval_macro_f1" in logs:
                self.evals.append({"step": state.global_step, "epoch": state.epoch,
                                   "macro_f1": logs["eval_macro_f1"], "accuracy": logs.get("eval_accuracy"),
                                   "loss": logs.get("eval_loss")})
            self._write(state, force=True)

    return JobStatusCallback()


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through run_training, which cleans its tmp folder


def run_job(folder: Path, *, lock_fd: int | None = None) -> int:
    """Run the job described by folder/request.json; keep status.json current. Returns the exit code.

    lock_fd: the inherited locked descriptor. It is closed just before the final state is written, so a
    caller that sees a finished state can start the next job at once.
    """
    from training.train import TrainingCancelled, run_training

    main = int(os.environ.get("RANK", "0")) == 0
    write = _update_status if main else (lambda *a, **k: {})
    signal.signal(signal.SIGTERM, _terminate)
    request = json.loads((folder / "request.json").read_text(encoding="utf-8"))
    write(folder, state="running", phase="preparing", pid=os.getpid(), started=_now())
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
    from training.crossval import run_crossval_request

    fold = {"text": "fold"}

    def on_fold(i: int, k: int) -> None:
        fold["text"] = f"fold {i}/{k}"
        _update_status(folder, phase=fold["text"], step=0, max_steps=0, loss=[], evals=[])

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
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "train":
        from studio.config import load_config
        from training.train import run_training, tqdm_progress

        cfg = load_config(args.config)
        info = run_training(args.curated, config=cfg.train, runs_root=args.runs_root, progress=tqdm_progress(),
                            cache_dir=cfg.state_dir / "cache")
        print(f"run {info.id}: {info.status} {info.metrics}")
        return 0
    # The inherited descriptor stays open (and locked) until the job's outcome is known.
    return run_job(args.job_dir, lock_fd=args.lock_fd)


if __name__ == "__main__":
    sys.exit(main())
