"""Review decisions: a person's keep / relabel / exclude on a task, stored as data beside the snapshots.

Decisions never overwrite what annotators wrote. They are appended to a log (one JSON line each: who, when,
which snapshot, which task, what, why); undo appends too. The curated view = a snapshot's labeled view with
the effective decisions applied, and every later stage (curate, train) reads that view.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Collection, Iterable, Literal

import numpy as np
import pandas as pd

from studio.atomic import append_lines, log_lock, read_log_lines
from studio.errors import DataError
from studio.tasks import TaskKind
from studio.rereview import TOOK, WAITING

Action = Literal["keep", "relabel", "exclude", "undo"]
ACTIONS = ("keep", "relabel", "exclude")
DECISION_COLUMNS = ["decision_id", "task_id", "action", "label", "note", "author", "snapshot_id", "created_at",
                    "undoes", "source"]
OUTDATED_COLUMNS = ["task_id", "action", "label", "author", "snapshot_id", "created_at", "label_then", "label_now"]
TRACK_RECORD_COLUMNS = ["task_id", "given_label", "suggested_label", "confidence", "taken", "judged_in"]
AUTO_FIX = "auto-fix"  # Decision.source of the decisions auto-fix takes; a person's decisions have "person"


@dataclass(frozen=True)
class Decision:
    task_id: int
    action: Action
    author: str
    snapshot_id: str
    label: str | None = None        # the new target, for "relabel": a class name (spans: the spans as JSON)
    note: str = ""
    undoes: str | None = None       # decision_id reverted, for "undo"
    decision_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    source: str = "person"          # who judged: "person", or AUTO_FIX (the model's suggestion, taken in bulk)


def validate_decision(decision: Decision, *, classes: tuple[str, ...] | list[str],
                      kind: TaskKind | None = None) -> None:
    """Raise DataError unless the decision can be applied. kind: the project's task kind, which reads a relabel's
    new target (needed for kinds whose target is not one class, e.g. corrected spans)."""
    if decision.action not in (*ACTIONS, "undo"):
        raise DataError(f"Decision action {decision.action!r} is unknown; expected one of {ACTIONS} or 'undo'.")
    if decision.action == "relabel" and kind is not None and kind.name != "single_label":
        kind.decision_target(decision.label)  # raises DataError naming what is wrong
    elif decision.action == "relabel" and decision.label not in classes:
        raise DataError(f"Cannot relabel task {decision.task_id} to {decision.label!r}: not a class of the config.",
                        hint=f"pick one of: {', '.join(classes)}")
    if decision.action == "undo" and not decision.undoes:
        raise DataError("An undo must name the decision it reverts (undoes=<decision_id>).")
    if not decision.author.strip():
        raise DataError("A decision needs an author.", hint="enter your name or email in the review form")


def live_decisions(log: pd.DataFrame) -> pd.DataFrame:
    """Every decision not undone (undo rows themselves left out), in log order."""
    undone = set(log.loc[log["action"] == "undo", "undoes"].dropna())
    return log[(log["action"] != "undo") & ~log["decision_id"].isin(undone)]


def effective_decisions(log: pd.DataFrame) -> pd.DataFrame:
    """The decision in force per task: the latest one that has not been undone. Columns as DECISION_COLUMNS."""
    if log.empty:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    return live_decisions(log).sort_values("created_at").groupby("task_id").tail(1).reset_index(drop=True)


def decision_history(log: pd.DataFrame) -> pd.DataFrame:
    """The whole log, newest first, with each row's state: "in force", "superseded" (a later decision on the task
    replaced it), "undone", or "undo" (the row is itself an undo; `undoes` names the decision it reverted)."""
    live = set(live_decisions(log)["decision_id"])
    in_force = set(effective_decisions(log)["decision_id"])
    state = ["undo" if a == "undo" else "in force" if d in in_force else "superseded" if d in live else "undone"
             for a, d in zip(log["action"], log["decision_id"])]
    return log.assign(state=state).sort_values("created_at", ascending=False, kind="stable", ignore_index=True)


def flagged_label_issues(issues: pd.DataFrame, *, excluding: Iterable = ()) -> pd.DataFrame:
    """The rows of an issue table (ISSUE_COLUMNS) the label-issue check flagged, less the tasks in `excluding`
    (e.g. those with a decision in force)."""
    rows = issues[(issues["issue_type"] == "label_issue") & issues["is_issue"]]
    return rows[~rows["task_id"].isin(list(excluding))]


def auto_fix_plan(issues: pd.DataFrame, log: pd.DataFrame, *, min_confidence: float,
                  classes: Collection[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the flagged label issues no decision covers yet into (fix, rest).

    fix: the out-of-sample model gives the suggested label at least min_confidence, so relabelling them to it in
    bulk is safe enough (bench/quality.py measures how often such suggestions are right), most confident first.
    rest: the other flagged label issues, for a person (the review queue, or Label Studio's "Needs review" tab),
    worst score first. A task with a decision in force is in neither: a person's decision is never overridden.
    issues: an assessment's issue table (ISSUE_COLUMNS); log: DecisionLog.read(); classes: only tasks whose given
    label is one of these (None or empty = every class), for data whose classes the model knows unequally well.
    """
    if not 0 < min_confidence <= 1:
        raise DataError(f"Auto-fix confidence {min_confidence} is not a probability in (0, 1].",
                        hint="use e.g. 0.9: relabel only where the model gives its suggestion 90% or more")
    flagged = flagged_label_issues(issues, excluding=effective_decisions(log)["task_id"])
    if classes:
        flagged = flagged[flagged["given_label"].isin(list(classes))]
    sure = (flagged["suggested_label"].fillna("") != "") & (flagged["confidence"] >= min_confidence)
    return (flagged[sure].sort_values("confidence", ascending=False, kind="stable"),
            flagged[~sure].sort_values("score", kind="stable"))


def auto_fix_decisions(fix: pd.DataFrame, *, author: str, snapshot_id: str, min_confidence: float) -> list[Decision]:
    """One relabel-to-the-suggestion decision per row of auto_fix_plan's `fix`, noting why it was taken."""
    return [Decision(int(r.task_id), "relabel", author, snapshot_id, label=str(r.suggested_label), source=AUTO_FIX,
                     note=f"{AUTO_FIX}: the model gives '{r.suggested_label}' {r.confidence:.2f} "
                          f"(threshold {min_confidence:g})")
            for r in fix.itertuples(index=False)]


def decision_text(decision: pd.Series) -> str:
    """A decision in a few words, for tables: "keep", "exclude", "relabel → card_arrival"."""
    label = decision.get("label")
    return f"relabel → {label}" if decision["action"] == "relabel" and isinstance(label, str) else str(
        decision["action"])


def suggestion_track_record(issues: pd.DataFrame, log: pd.DataFrame,
                            rereviews: pd.DataFrame | None = None) -> pd.DataFrame:
    """How often people took the model's suggestion: the way to check the auto-fix threshold on this data.

    Columns TRACK_RECORD_COLUMNS, one row per judged suggestion:
    - judged_in "studio": a flagged label issue of `issues` with a suggestion and a person's decision in force
      (auto-fix's own decisions prove nothing). taken: relabelled to the suggestion; a keep or a relabel to another
      class is a suggestion not taken. Excluded tasks are left out: an unusable text says nothing about the
      suggestion. A decision taken on an earlier snapshot is judged against this report's suggestion.
    - judged_in "Label Studio": a task sent for re-review that an annotator has reviewed since
      (studio.rereview.rereview_outcomes), judged against the suggestion it was sent with; a task a person
      decided here as well counts once, by that decision.
    """
    rows = flagged_label_issues(issues)
    rows = rows[rows["suggested_label"].fillna("") != ""]
    current = effective_decisions(log)
    people = current[(current["source"] != AUTO_FIX) & (current["action"] != "exclude")]
    rows = rows.merge(people[["task_id", "action", "label"]], on="task_id")
    taken = (rows["action"] == "relabel") & (rows["label"] == rows["suggested_label"])
    record = rows.assign(taken=taken.to_numpy(), judged_in="studio")[TRACK_RECORD_COLUMNS]
    if rereviews is None or rereviews.empty:
        return record
    back = rereviews[(rereviews["outcome"] != WAITING) & (rereviews["suggested_label"] != "")
                     & rereviews["confidence"].notna() & ~rereviews["task_id"].isin(record["task_id"])]
    back = back.assign(taken=(back["outcome"] == TOOK).to_numpy(), judged_in="Label Studio")[TRACK_RECORD_COLUMNS]
    return pd.concat([record, back], ignore_index=True) if len(back) else record


def track_record_by(record: pd.DataFrame, key: str) -> pd.DataFrame:
    """suggestion_track_record grouped by a column (e.g. given_label): reviewed, taken, share taken; worst first."""
    out = record.groupby(key).agg(reviewed=("taken", "size"), taken=("taken", "sum")).reset_index()
    out["taken"] = out["taken"].astype(int)
    return out.assign(share=out["taken"] / out["reviewed"]).sort_values(["share", "reviewed"],
                                                                        ascending=[True, False], kind="stable")


def track_record_calibration(record: pd.DataFrame, *, step: float = 0.1) -> pd.DataFrame:
    """suggestion_track_record per band of the model's probability (probability = the band's lower edge): if the
    probabilities are calibrated on this data, the share taken in a band is about its probability."""
    edge = np.minimum(np.floor(record["confidence"].to_numpy(dtype=float) / step + 1e-9) * step, 1 - step)
    return track_record_by(record.assign(probability=np.round(edge, 6)), "probability").sort_values("probability")


#: Reviews at or above a threshold before the track record's share says much about it (one review moves it 10%).
TRACK_RECORD_ENOUGH = 10


def track_record_line(record: pd.DataFrame, threshold: float) -> str:
    """One sentence: how often people took the suggestions the model gives at least `threshold`."""
    above = record[record["confidence"] >= threshold]
    if above.empty:
        return (f"No flagged label whose suggestion the model gives {threshold:g} or more has been reviewed by a "
                f"person yet ({len(record)} reviewed in all), so this threshold is unchecked on this data.")
    labels = f"{len(above)} flagged label{'s' * (len(above) != 1)}"
    few = (f" That is too few to judge the threshold by: the share moves by {1 / len(above):.0%} with each review; "
           f"wait for {TRACK_RECORD_ENOUGH} or more." if len(above) < TRACK_RECORD_ENOUGH else "")
    return (f"People reviewed {labels} whose suggestion the model gives {threshold:g} or more and took the "
            f"suggestion for {int(above['taken'].sum())} ({above['taken'].mean():.0%}).{few}")


def review_requests(rows: pd.DataFrame) -> pd.DataFrame:
    """Issue rows -> what `send_for_review` pushes and logs: task_id, label (the suggestion, else the given label),
    score (what Label Studio shows beside the suggestion, as a percentage: the model's probability of it, not the
    label-quality score, which would read as one), and for the request log given_label, suggested_label ("" =
    none) and confidence."""
    suggested = rows["suggested_label"].fillna("").astype(str)
    probability = rows["confidence"].astype(float)
    return pd.DataFrame({"task_id": rows["task_id"].to_numpy(),
                         "label": suggested.where(suggested != "", rows["given_label"]).to_numpy(),
                         "score": probability.fillna(rows["score"].astype(float)).to_numpy(),
                         "given_label": rows["given_label"].to_numpy(), "suggested_label": suggested.to_numpy(),
                         "confidence": rows["confidence"].astype(float).to_numpy()})


def apply_decisions(labeled: pd.DataFrame, log: pd.DataFrame, *, kind: TaskKind) -> pd.DataFrame:
    """labeled view (task_id, text, the kind's target column, ...) + decisions -> curated view.

    Adds `given_label` (what annotators chose, untouched), `decision`, `decided_by`; the target becomes the
    person's where they relabelled (corrected) it; excluded tasks are dropped from the returned view (the log
    still records them).
    """
    curated = labeled.copy()
    label_col = kind.target_column
    curated["given_label"] = curated[label_col]
    curated["decision"] = ""
    curated["decided_by"] = ""
    current = effective_decisions(log)
    if current.empty:
        return curated
    by_task = current.set_index("task_id")
    hit = curated["task_id"].isin(by_task.index)
    curated.loc[hit, "decision"] = curated.loc[hit, "task_id"].map(by_task["action"])
    curated.loc[hit, "decided_by"] = curated.loc[hit, "task_id"].map(by_task["author"])
    relabel = hit & (curated["decision"] == "relabel")
    if relabel.any():
        new = curated.loc[relabel, "task_id"].map(by_task["label"])
        curated[label_col] = curated[label_col].astype(object)
        for row, value in zip(new.index, new):
            curated.at[row, label_col] = kind.decision_target(value)
    return curated[curated["decision"] != "exclude"].reset_index(drop=True)


def outdated_decisions(log: pd.DataFrame, labels_at: Callable[[str], pd.Series | None],
                       labels_now: pd.Series) -> pd.DataFrame:
    """Decisions in force taken on a label the annotators have changed since (OUTDATED_COLUMNS), oldest first.

    Such a decision still applies (apply_decisions): a person decided, and the annotators' new label does not
    silently undo that. But it was about another label, so it is listed for a person to confirm again or undo.
    labels_at(snapshot id): task_id -> label in that snapshot (None if the snapshot is gone: nothing can be said);
    labels_now: task_id -> label now. A task without a label then or now (e.g. its annotation deleted) is
    not listed: the decision applies to nothing new. Labels are compared as given (multi-label: "a, b").
    """
    current = effective_decisions(log)
    parts = []
    for snapshot_id, group in current.groupby("snapshot_id", sort=False):
        then = labels_at(str(snapshot_id))
        if then is None:
            continue
        group = group.assign(label_then=group["task_id"].map(then), label_now=group["task_id"].map(labels_now))
        parts.append(group[group["label_then"].notna() & group["label_now"].notna()
                           & (group["label_then"] != group["label_now"])])
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=OUTDATED_COLUMNS)
    return pd.concat(parts, ignore_index=True)[OUTDATED_COLUMNS].sort_values("created_at", ignore_index=True)


def confirm_again(outdated: pd.DataFrame, *, author: str, snapshot_id: str) -> list[Decision]:
    """The same decisions again, taken on `snapshot_id` (so no longer outdated), with a note of what changed."""
    return [Decision(int(r.task_id), r.action, author, snapshot_id,
                     label=None if pd.isna(r.label) or r.action != "relabel" else str(r.label),
                     note=f"confirmed again after the annotators changed the label from '{r.label_then}' to "
                          f"'{r.label_now}'")
            for r in outdated.itertuples(index=False)]


class DecisionLog:
    """Append-only JSONL of decisions for one project: <state>/decisions/project-<id>.jsonl."""

    def __init__(self, folder: str | Path, project_id: int) -> None:
        self.file = Path(folder) / f"project-{project_id}.jsonl"

    def append(self, decisions: list[Decision], *, classes: tuple[str, ...] | list[str],
               kind: TaskKind | None = None) -> None:
        for d in decisions:
            validate_decision(d, classes=classes, kind=kind)
        append_lines(self.file, [json.dumps(asdict(d)) for d in decisions])

    def lock(self):
        """Hold across a read-decide-append (auto-fix), so two at once do not decide on the same tasks."""
        return log_lock(self.file)

    @property
    def damaged_note(self) -> str | None:
        """What to tell the user about damaged lines of the log (None when every line is whole)."""
        return read_log_lines(self.file).note

    def read(self) -> pd.DataFrame:
        """Every decision of the log, in order; a damaged line (cut by a crash, NUL bytes) is left out and named in
        the log's warning (`damaged_note`), the rest stays usable."""
        lines = read_log_lines(self.file)
        log = pd.DataFrame(lines.rows, columns=DECISION_COLUMNS)
        if log.empty:
            return pd.DataFrame(columns=DECISION_COLUMNS)
        # Logs written before decisions had a source: auto-fix's were recognisable by their note only.
        auto = log["note"].fillna("").astype(str).str.startswith(f"{AUTO_FIX}:")
        log["source"] = [s if isinstance(s, str) else AUTO_FIX if a else "person" for s, a in zip(log["source"], auto)]
        return log

    def undo_last(self, task_id: int, *, author: str, snapshot_id: str) -> Decision | None:
        """Revert the decision in force for a task (appends an undo). None if there is nothing to undo.

        A live copy of the same decision (same action and label, e.g. written twice by a log without the lock)
        is undone with it, so what was in force is gone rather than replaced by its twin."""
        with self.lock():
            log = self.read()
            current = effective_decisions(log)
            row = current[current["task_id"] == task_id]
            if row.empty:
                return None
            top = row.iloc[0]
            live = live_decisions(log)
            label = "" if pd.isna(top["label"]) else str(top["label"])
            twins = live[(live["task_id"] == task_id) & (live["action"] == top["action"])
                         & (live["label"].fillna("").astype(str) == label)
                         & (live["decision_id"] != top["decision_id"])]
            undos = [Decision(task_id=task_id, action="undo", author=author, snapshot_id=snapshot_id, undoes=str(d))
                     for d in [top["decision_id"], *twins["decision_id"]]]
            self.append(undos, classes=())
        return undos[0]

    def undo_all(self, task_ids: Iterable[int], *, author: str, snapshot_id: str) -> int:
        """Revert every live decision of these tasks (undo_last would bring an earlier one back into force), so
        that the annotators' label counts again. Appends one undo per decision; returns how many."""
        live = live_decisions(self.read())
        live = live[live["task_id"].isin(list(task_ids))]
        undos = [Decision(task_id=int(r.task_id), action="undo", author=author, snapshot_id=snapshot_id,
                          undoes=str(r.decision_id)) for r in live.itertuples(index=False)]
        self.append(undos, classes=())
        return len(undos)
