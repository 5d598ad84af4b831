"""Background jobs' folders, lock and lifecycle: start a job process, read its status, cancel it.

    <jobs_root>/train.lock          flock'ed by the running job process for its whole life; holds its job id
    <jobs_root>/<job_id>/request.json what the job is to do; request['kind'] picks it ('train' or 'crossval')
    <jobs_root>/<job_id>/status.json  state, step/max_steps, epoch, eta_s, tokens_per_s, loss and eval history,
                                      run_id, error
    <jobs_root>/<job_id>/log.txt      the process's stdout + stderr
    <jobs_root>/<job_id>/cancel       the cancel flag (the Trainer callback stops training when it appears)

The parent takes the lock, then hands the locked file descriptor to the child (pass_fds) and closes its own
copy: the lock is never free between "start" and "running", and the kernel frees it when the child dies,
however it dies. A job left 'running' by a dead process is marked failed the next time anyone reads it.

Each kind of job starts through `launch_job` (training/jobs.py `start_job`, training/crossval.py
`start_crossval_job`); the process it starts, `python -m training.jobs run <job_dir>`, does the work. This module
imports neither of them, so both import it.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from studio.atomic import write_json_atomic
from studio.errors import JobAlreadyRunning, TrainingError
from training.runs import RunRegistry

LOCK_FILE = "train.lock"
STATUS_FILE = "status.json"
CANCEL_FILE = "cancel"
ACTIVE = ("queued", "running")
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
_PROJECT_ROOT = Path(__file__).resolve().parents[1]


def utc_now() -> str:
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
    tokens_per_s: float | None = None  # input tokens per second so far, where the Trainer counts them (SFT)
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


def update_status(folder: Path, **changes: Any) -> dict[str, Any]:
    status = _read_status(folder)
    status.update(changes, updated=utc_now())
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
        update_status(folder, state="queued", phase="starting", kind=request["kind"], created=utc_now(), step=0,
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
            update_status(folder, state="failed", phase="done", error=f"could not start the job process: {exc}")
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
    return update_status(folder, state=state, error=error, pid=pid)


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
    (job.folder / CANCEL_FILE).write_text(utc_now())
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


