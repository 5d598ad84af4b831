"""The run registry: one folder per finished run, a `current` pointer, status records for failed runs.

    <root>/run-20250101-120000-ab12cd34/   config.json data.json metrics.json labels.json README.md adapter/
    <root>/.tmp-<run_id>/                  a run being written (renamed into place when complete)
    <root>/.status/<run_id>.json           failed / cancelled runs (never a folder that looks finished)
    <root>/current                         the promoted run id, written atomically

A run folder exists under its final name only once every file is in it, so "is it finished?" is "does the
folder exist?". A crash (even kill -9) leaves at most a dot-folder that `list()` ignores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from studio.atomic import write_json_atomic, write_text_atomic  # write_json_atomic: also imported from here
from studio.errors import TrainingError

TMP_PREFIX = ".tmp-"
STATUS_DIR = ".status"
CURRENT_FILE = "current"
RUN_FILES = ("config.json", "data.json", "metrics.json", "labels.json", "README.md")
_RUN_ID = re.compile(r"^run-\d{8}-\d{6}-[A-Za-z0-9_.-]+$")


@dataclass
class RunInfo:
    """What the UI lists about a run. `status`: succeeded | failed | cancelled."""

    id: str
    created: str  # ISO 8601, UTC
    status: str
    data_version: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)  # accuracy, macro_f1, selected, split
    path: Path | None = None  # the run folder (succeeded runs only)
    error: str = ""
    test_set: str = ""  # the hash of its data version's test tasks (studio/split_ledger.py), "" if unknown


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def run_metrics(run_path: str | Path | None) -> dict[str, Any]:
    """metrics.json of a run folder, {} when absent (a failed or half-written run)."""
    file = Path(run_path) / "metrics.json" if run_path else None
    return _read_json(file) if file and file.exists() else {}


class RunRegistry:
    """Runs under one root folder. Cheap to construct; reads the disk on every call (no stale state)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- writing a run -------------------------------------------------------------------------------------
    def new_run_id(self, data_version: str, *, now: datetime | None = None) -> str:
        """run-<UTC yyyymmdd-HHMMSS>-<data version[:8]>, suffixed -2, -3... if that id is taken."""
        stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
        version = re.sub(r"[^A-Za-z0-9_.-]", "_", data_version or "noversion")[:8]
        base = f"run-{stamp}-{version}"
        run_id, n = base, 1
        while self._taken(run_id):
            n += 1
            run_id = f"{base}-{n}"
        return run_id

    def _taken(self, run_id: str) -> bool:
        return any(p.exists() for p in (self.root / run_id, self.root / f"{TMP_PREFIX}{run_id}",
                                        self.root / STATUS_DIR / f"{run_id}.json"))

    def begin(self, run_id: str) -> Path:
        """Create and return the temporary folder the run is written into."""
        tmp = self.root / f"{TMP_PREFIX}{run_id}"
        tmp.mkdir(parents=True, exist_ok=False)
        return tmp

    def finish(self, run_id: str) -> RunInfo:
        """Rename the complete temporary folder into place (atomic on one file system)."""
        tmp = self.root / f"{TMP_PREFIX}{run_id}"
        missing = [f for f in RUN_FILES if not (tmp / f).exists()]
        if missing:
            raise TrainingError(f"Run {run_id} is incomplete: {missing} missing in {tmp}.",
                                hint="this is a bug in training; the run was not registered")
        os.replace(tmp, self.root / run_id)
        return self.get(run_id)

    def abort(self, run_id: str, *, status: str, error: str = "", data_version: str = "") -> None:
        """Drop the temporary folder and leave a small status record (failed or cancelled)."""
        shutil.rmtree(self.root / f"{TMP_PREFIX}{run_id}", ignore_errors=True)
        (self.root / STATUS_DIR).mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.root / STATUS_DIR / f"{run_id}.json", {
            "id": run_id, "status": status, "error": error, "data_version": data_version,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })

    # -- reading -------------------------------------------------------------------------------------------
    def path(self, run_id: str) -> Path:
        return self.root / run_id

    def get(self, run_id: str) -> RunInfo:
        folder = self.root / run_id
        if run_id and _RUN_ID.match(run_id) and folder.is_dir():
            return self._info(folder)
        record = self.root / STATUS_DIR / f"{run_id}.json"
        if run_id and record.exists():
            data = _read_json(record)
            return RunInfo(id=run_id, created=data.get("created", ""), status=data.get("status", "failed"),
                           data_version=data.get("data_version", ""), error=data.get("error", ""))
        known = [r.id for r in self.list()][:5]
        raise TrainingError(f"No run '{run_id}' under {self.root}.",
                            hint=f"pick one of the registered runs: {', '.join(known) or '(none yet)'}")

    def _info(self, folder: Path) -> RunInfo:
        data = _read_json(folder / "data.json")
        metrics = _read_json(folder / "metrics.json")
        return RunInfo(id=folder.name, created=data.get("created", ""), status="succeeded",
                       data_version=data.get("version_id", ""), metrics=metrics.get("summary", {}),
                       path=folder, test_set=str((data.get("test_set") or {}).get("hash", "")))

    def list(self, *, include_failed: bool = True) -> list[RunInfo]:
        """Every run, newest first (by creation time, then id)."""
        runs: list[RunInfo] = []
        if self.root.is_dir():
            for folder in self.root.iterdir():
                if folder.is_dir() and _RUN_ID.match(folder.name) and (folder / "data.json").exists():
                    runs.append(self._info(folder))
            status_dir = self.root / STATUS_DIR
            if include_failed and status_dir.is_dir():
                runs.extend(self.get(f.stem) for f in status_dir.glob("*.json"))
        return sorted(runs, key=lambda r: (r.created, r.id), reverse=True)

    # -- the promoted run ----------------------------------------------------------------------------------
    def promote(self, run_id: str) -> RunInfo:
        """Make `run_id` the current model. Only a succeeded run can be promoted."""
        info = self.get(run_id)
        if info.status != "succeeded":
            raise TrainingError(f"Run {run_id} has status '{info.status}'; only a finished run can be promoted.",
                                hint="promote a run listed as succeeded")
        write_text_atomic(self.root / CURRENT_FILE, run_id + "\n")
        return info

    def current(self) -> RunInfo | None:
        """The promoted run, or None when nothing was promoted yet (or its folder was deleted)."""
        pointer = self.root / CURRENT_FILE
        if not pointer.exists():
            return None
        run_id = pointer.read_text(encoding="utf-8").strip()
        folder = self.root / run_id
        return self._info(folder) if folder.is_dir() else None
