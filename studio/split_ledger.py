"""The split ledger: which split each task is in, kept across data versions.

Without it every data version would reshuffle the split, so runs could not be compared and yesterday's test
tasks would train today's model. With it, a task keeps its split for good:

- Curating reads the ledger and keeps every task it names where it was; only new tasks are assigned
  (`studio.curate.split_dataset(keep=...)`), towards the configured ratios over all tasks.
- Exporting a data version records the new tasks' splits (`SplitLedger.with_tasks`). A preview (the Curate
  page before Export, `studio curate --dry-run`) changes nothing.
- Changing `[curate] ratios` or `seed` moves nothing by itself: new tasks follow the new settings and the page
  says that the old ones keep theirs. `resplit` assigns every task afresh, after saying what moves; the old
  ledger is kept beside it (split_history/), so nothing decided before is lost.
- A task that leaves the curated data (excluded, deleted) stays in the ledger: if it comes back, it comes back
  to its split.

File: `<project state>/splits.json`, {"ratios", "seed", "created", "updated", "assignments": {task_id: split}}.
`task_set_hash` names a test set (its task ids), recorded in the data version's manifest and card and in
every run, so two scores can be said to come from the same test set or not.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import pandas as pd

from studio.atomic import write_json_atomic
from studio.curate import SPLITS, SplitResult
from studio.errors import DataError

LEDGER_FILE = "splits.json"
HISTORY_DIR = "split_history"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def task_set_hash(task_ids: Iterable[object]) -> str:
    """12 hex digits naming a set of task ids (order and repeats do not matter); "" for an empty set."""
    ids = sorted({str(t) for t in task_ids})
    if not ids:
        return ""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]


@dataclass
class SplitLedger:
    """assignments: task id (as a string) -> "train" | "validation" | "test". ratios and seed: the settings the
    ledger was started (or last re-split) with."""

    ratios: list[float]
    seed: int
    assignments: dict[str, str] = field(default_factory=dict)
    created: str = field(default_factory=_now)
    updated: str = ""

    @classmethod
    def load(cls, folder: Path) -> SplitLedger | None:
        """The project's ledger, or None before its first export."""
        file = Path(folder) / LEDGER_FILE
        if not file.exists():
            return None
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            ledger = cls(ratios=[float(r) for r in data["ratios"]], seed=int(data["seed"]),
                         assignments={str(k): str(v) for k, v in data["assignments"].items()},
                         created=str(data.get("created", "")), updated=str(data.get("updated", "")))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"The split ledger {file} cannot be read ({exc}).",
                            hint="restore it from split_history/, or move it away to start the split afresh "
                                 "(every task is then assigned again)") from None
        bad = sorted({s for s in ledger.assignments.values() if s not in SPLITS})
        if bad:
            raise DataError(f"The split ledger {file} names the split(s) {bad}, expected {', '.join(SPLITS)}.",
                            hint="restore it from split_history/, or move it away to start the split afresh")
        return ledger

    def save(self, folder: Path) -> Path:
        file = Path(folder) / LEDGER_FILE
        file.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(file, {"ratios": self.ratios, "seed": self.seed, "created": self.created,
                                 "updated": self.updated or self.created, "assignments": self.assignments})
        return file

    def with_tasks(self, split_df: pd.DataFrame) -> SplitLedger:
        """This ledger plus the tasks of split_df (task_id, split) it does not name yet; named ones never move."""
        added = {str(t): str(s) for t, s in zip(split_df["task_id"], split_df["split"])
                 if str(t) not in self.assignments}
        return SplitLedger(ratios=self.ratios, seed=self.seed, assignments={**self.assignments, **added},
                           created=self.created, updated=_now() if added else self.updated)

    def settings_note(self, ratios: list[float], seed: int) -> str | None:
        """What to tell the user when [curate] no longer says what the ledger was made with; None when it does."""
        if [round(r, 6) for r in ratios] == [round(r, 6) for r in self.ratios] and seed == self.seed:
            return None
        old = "/".join(f"{r:g}" for r in self.ratios)
        new = "/".join(f"{r:g}" for r in ratios)
        return (f"The split was made with ratios {old} and seed {self.seed}; the settings now say {new} and seed "
                f"{seed}. Tasks already in a split keep it (so test scores stay comparable) and only new tasks "
                "follow the new settings. Re-split to apply them to every task (it moves tasks between splits).")


def moves(old: SplitLedger | None, split_df: pd.DataFrame) -> pd.DataFrame:
    """How many tasks go from which split (rows, the ledger's) to which (columns, split_df's); a task the ledger
    does not name counts under "new". Only tasks in split_df are counted."""
    frame = pd.DataFrame({"task": split_df["task_id"].astype(str).to_numpy(),
                          "to": split_df["split"].astype(str).to_numpy()}).drop_duplicates("task")
    frame["from"] = [(old.assignments.get(t, "new") if old else "new") for t in frame["task"]]
    table = pd.crosstab(frame["from"], frame["to"]).reindex(index=[*SPLITS, "new"], columns=list(SPLITS),
                                                          fill_value=0)
    return table.loc[table.sum(axis=1) > 0]


def moved_count(table: pd.DataFrame) -> int:
    """Tasks that change split in a `moves` table (new tasks do not count)."""
    return int(sum(table.loc[s].sum() - table.loc[s, s] for s in SPLITS if s in table.index))


def archive(folder: Path) -> Path | None:
    """Copy the current ledger into split_history/ (before a re-split replaces it); None when there is none."""
    file = Path(folder) / LEDGER_FILE
    if not file.exists():
        return None
    history = Path(folder) / HISTORY_DIR
    history.mkdir(parents=True, exist_ok=True)
    target = history / f"splits-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%f')}.json"
    shutil.copy2(file, target)
    return target


def split_summary(split: SplitResult, table: pd.DataFrame | None) -> str:
    """One sentence on where the tasks of a curation came from: kept from the ledger, new, or all afresh."""
    new = table.loc["new"] if table is not None and "new" in table.index else None
    n_new = int(new.sum()) if new is not None else split.assigned
    if split.kept == 0:
        if table is not None and len(table.index.difference(["new"])):
            return f"Every task ({split.assigned}) assigned afresh: a re-split."
        return f"{split.assigned} task(s) split for the first time; each keeps its split in later data versions."
    where = ", ".join(f"{s} {int(n)}" for s, n in new.items() if n) if new is not None else ""
    return (f"{split.kept} task(s) keep the split earlier data versions gave them; "
            + (f"{n_new} new task(s) assigned: {where}." if n_new else "no new tasks."))
