"""Where state lives under the git-ignored state folder, and the one-time move from the layout before the studio
had several projects.

    <state>/labelstudio/   the one embedded server: database, log, pid, credentials.json       shared
    <state>/cache/         embedding caches (keyed by model and text, so any project's hit is right)  shared
    <state>/models/        models the studio keeps for every project                              shared
    <state>/app/, <state>/mlbackend/   the app's and the ML backend's logs (one process each)     shared
    <state>/detached.json  what a detached `studio up` left running                               shared
    <state>/projects/<key>/   everything of one project: snapshots/, decisions/, quality/, review_requests/,
                              settings/, exports/, runs/ (runs/current: the project's model), jobs/

Before there were several projects the per-project folders sat directly in <state>/. They belong to the
primary project: `migrate_flat_layout` moves them into <state>/projects/<primary key>/ the first time a
workspace opens, says so once, and never loses a file (one that already exists, different, at the new place is
kept under <state>/legacy-<time>/ instead).
"""

from __future__ import annotations

import errno
import fcntl
import filecmp
import logging
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

log = logging.getLogger("studio.layout")

#: Folders every project shares (one Label Studio server, one embedding cache, one app, one ML backend).
SHARED_FOLDERS = frozenset({"labelstudio", "cache", "models", "app", "mlbackend"})
#: Folders each project has of its own, under <state>/projects/<key>/.
PROJECT_FOLDERS = ("snapshots", "decisions", "quality", "review_requests", "settings", "exports", "runs", "jobs")
PROJECTS_DIR = "projects"


def project_dir(state_dir: Path, key: str) -> Path:
    """<state>/projects/<key>/: the folder holding everything of one project."""
    return Path(state_dir) / PROJECTS_DIR / key


def flat_folders(state_dir: Path) -> list[str]:
    """The per-project folders still lying directly in <state>/ (the layout before several projects)."""
    return [name for name in PROJECT_FOLDERS if (Path(state_dir) / name).is_dir()]


def migrate_flat_layout(state_dir: Path, key: str) -> list[str]:
    """Move <state>/snapshots/, decisions/, ... (the layout before several projects) into <state>/projects/<key>/.

    Returns the folders moved ([] when there was nothing to do, which is the cheap common case). Safe against
    several processes opening a workspace at once (`studio up` starts the app and the ML backend together): the
    move holds a lock. A training job still running from the old layout holds <state>/jobs/train.lock; the move
    then waits for a later start rather than pull the folders from under it."""
    state_dir = Path(state_dir)
    if not flat_folders(state_dir):
        return []
    target = project_dir(state_dir, key)
    target.mkdir(parents=True, exist_ok=True)
    with _locked(state_dir / PROJECTS_DIR / ".migrate.lock"):
        if _job_running(state_dir / "jobs"):
            log.warning("A training job of the old state layout is still running (%s): the move of the state "
                        "folders into %s waits until it has ended.", state_dir / "jobs", target)
            return []
        legacy = state_dir / f"legacy-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
        moved, kept = [], 0
        for name in flat_folders(state_dir):  # again, under the lock: another process may have moved them
            source, dest = state_dir / name, target / name
            if not dest.exists():
                source.rename(dest)
            else:
                kept += _merge(source, dest, legacy / name)
            moved.append(name)
    note = (f" {kept} file(s) that differed from the one already at the new place were kept under {legacy}."
            if kept else "")
    log.warning("The state folder now keeps each project apart: moved %s from %s into %s (the project '%s').%s",
                ", ".join(moved), state_dir, target, key, note)
    return moved


def _merge(source: Path, dest: Path, legacy: Path) -> int:
    """Move every file of `source` into `dest` where `dest` has no such file; an identical copy is dropped, a
    different one goes to `legacy`. Removes the emptied folders. Returns how many went to `legacy`."""
    kept = 0
    for folder, dirs, files in os.walk(source, topdown=False):
        for name in [*files, *(d for d in dirs if (Path(folder) / d).is_symlink())]:
            path = Path(folder) / name
            rel = path.relative_to(source)
            there = dest / rel
            if not there.exists() and not there.is_symlink():
                there.parent.mkdir(parents=True, exist_ok=True)
                path.rename(there)
            elif there.is_file() and not path.is_symlink() and filecmp.cmp(path, there, shallow=False):
                path.unlink()  # content-addressed stores (snapshots, exports) hold the same bytes twice
            else:
                (legacy / rel).parent.mkdir(parents=True, exist_ok=True)
                path.rename(legacy / rel)
                kept += 1
        try:
            Path(folder).rmdir()
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    return kept


def _job_running(jobs: Path) -> bool:
    """Does a live job hold <jobs>/train.lock (training.job_control's lock)?"""
    lock = jobs / "train.lock"
    if not lock.exists():
        return False
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


@contextmanager
def _locked(file: Path) -> Iterator[None]:
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_private(state_dir: Path) -> None:
    """The state folder is the user's alone (0700): it holds Label Studio's database (with the admin token in
    plain text), credentials and everything people labeled. Label Studio's database file, if there, is 0600.
    A folder someone else owns (a shared, read-only install) is left as it is."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        if state_dir.stat().st_uid == os.getuid() and state_dir.stat().st_mode & 0o077:
            os.chmod(state_dir, 0o700)
        for db in (state_dir / "labelstudio" / "data").glob("*.sqlite3*"):
            if db.stat().st_mode & 0o077:
                os.chmod(db, 0o600)
    except OSError as exc:
        log.warning("Could not make %s private (%s): other users of this machine may read it.", state_dir, exc)
