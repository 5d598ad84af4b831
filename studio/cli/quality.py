"""`studio quality | crossval | autofix`: label quality and fixing it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from studio.cli.base import aligned, bar, command, follow, project_arg, snapshot_arg, warn
from studio.review import (auto_fix_plan, decision_text, effective_decisions, flagged_label_issues, track_record_by,
                           track_record_line)
from studio.workspace import Workspace

if TYPE_CHECKING:
    import pandas as pd

    from studio.snapshot import Snapshot


def _quality_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--snapshot", default=None, help="snapshot id (default: the newest)")
    p.add_argument("--out", default=None, help="write the issue table here (.parquet or .csv)")


def check_out(out: str | None) -> None:
    """--out must name a .parquet or .csv file in a folder that exists."""
    from studio.errors import DataError

    if not out:
        return
    path = Path(out)
    if path.suffix not in (".parquet", ".csv"):
        raise DataError(f"--out {out}: the issue table is written as .parquet or .csv, not "
                        f"{path.suffix or 'no suffix'}.", hint="end the file name in .parquet or .csv")
    if not path.parent.is_dir():
        raise DataError(f"--out {out}: the folder {path.parent} does not exist.",
                        hint=f"create it first (mkdir -p {path.parent}) or write the table elsewhere")


@command("quality", "label issues, outliers, near-duplicates, class summary and annotator consensus", _quality_args)
def cmd_quality(ws: Workspace, args: argparse.Namespace) -> int:
    check_out(args.out)  # before the work, not after it
    snapshot = snapshot_arg(ws, args.snapshot)
    assessment = ws.quality.assess(snapshot, progress=bar("Embedding", unit="text"))
    if snapshot.schema.kind.name == "spans":
        return _span_quality_summary(ws, snapshot, assessment, args.out)
    if snapshot.schema.kind.name == "generation":
        return _generation_quality_summary(ws, snapshot, assessment, args.out)
    issues = assessment.issues
    flagged = issues[issues["is_issue"]]
    print(f"Snapshot {snapshot.id}: {assessment.meta['n_labeled']} labeled tasks; probabilities from "
          f"{assessment.meta['model']}")
    print(f"  log-loss (lower = better): {_scores_line(assessment.meta['model_scores'], assessment.meta['model'])}")
    meta = assessment.meta
    if (meta.get("choice") or {}).get("rule"):
        print(f"  why: {meta['choice']['rule']}")
    if (meta.get("view") or {}).get("why"):
        texts = meta.get("texts") or {}
        print(f"  texts: {meta['view']['why']}" + (f" (median {texts['median_words']} words, p90 "
                                                  f"{texts['p90_words']})" if "median_words" in texts else ""))
    if assessment.meta.get("external"):
        print("  external = the fine-tuned model, cross-validated in "
              f"{assessment.meta['external'].get('folds')} folds (studio crossval)")
    for warning in [*assessment.meta.get("warnings", []), ws.review.outdated_warning(snapshot)]:
        warn(warning)
    counts = flagged["issue_type"].value_counts()
    print("\nFlagged:" + ("\n" + aligned({kind.replace("_", " "): f"{n:>6}" for kind, n in counts.items()}, indent="  ")
                         if len(counts) else " nothing"))
    cols = ["task_id", "given_label", "suggested_label", "confidence", "score", "decision", "text"]
    label_issues = flagged_label_issues(issues)
    worst = label_issues.sort_values("score").head(10)
    if not worst.empty:
        decided = effective_decisions(ws.decisions(snapshot.manifest["project_id"]).read()).set_index("task_id")
        worst = worst.assign(decision=worst["task_id"].map(lambda t: decision_text(decided.loc[t])
                                                           if t in decided.index else ""))
        print("\nMost likely mislabeled:\n" + worst[cols].to_string(index=False, max_colwidth=60))
    auto_fix = _auto_fix_line(ws, snapshot, issues)
    if auto_fix:
        print(f"\n{auto_fix}")
    if not assessment.annotators.empty:
        print("\nAnnotators (CROWDLAB quality, best first):\n" + assessment.annotators.to_string(index=False))
    out = Path(args.out) if args.out else ws.quality.folder(snapshot) / "issues.parquet"
    if args.out:
        table = issues.assign(annotators=issues["annotators"].astype(str))
        table.to_csv(out, index=False) if out.suffix == ".csv" else table.to_parquet(out, index=False)
    print(f"\nIssue table: {out}")
    return 0


def _generation_quality_summary(ws: Workspace, snapshot: Snapshot, report, out_arg: str | None) -> int:
    """`studio quality` on an instruction -> response project: the checks (studio/assess_generation.py) in plain
    text: flags per check with its thresholds, the worst prompts, the issue table."""
    meta = report.meta
    print(f"Snapshot {snapshot.id}: {meta['n_tasks']} answered prompts, {meta['n_responses']} answers; "
          f"{meta['flagged_tasks']} prompts flagged")
    for warning in [*meta.get("warnings", []), ws.review.outdated_warning(snapshot)]:
        warn(warning)
    summary = report.summary
    if len(summary):
        print("\nFlags per check:\n" + summary[["check", "flagged", "tasks", "thresholds"]].to_string(
            index=False, max_colwidth=70))
    worst = report.tasks.head(10)
    if not worst.empty:
        decided = effective_decisions(ws.decisions(snapshot.manifest["project_id"]).read()).set_index("task_id")
        table = worst.assign(decision=worst["task_id"].map(lambda t: decision_text(decided.loc[t])
                                                           if t in decided.index else ""))
        print("\nWorst prompts:\n" + table[["task_id", "check", "score", "detail", "decision", "prompt"]].to_string(
            index=False, max_colwidth=50))
    out = Path(out_arg) if out_arg else ws.quality.folder(snapshot) / "issues.parquet"
    if out_arg:
        table = report.issues.assign(related=report.issues["related"].astype(str))
        table.to_csv(out, index=False) if out.suffix == ".csv" else table.to_parquet(out, index=False)
    print(f"\nIssue table: {out}")
    return 0


def _span_quality_summary(ws: Workspace, snapshot: Snapshot, report, out_arg: str | None) -> int:
    """`studio quality` on a named-entity project: the span report (studio/assess_spans.py) in plain text."""
    meta, kind = report.meta, snapshot.schema.kind
    print(f"Snapshot {snapshot.id}: {meta['n_labeled']} labeled texts; word probabilities from the {meta['model']}, "
          f"{meta['folds']} folds")
    for warning in [*meta.get("warnings", []), ws.review.outdated_warning(snapshot)]:
        warn(warning)
    print(aligned({"flagged texts": f"{meta['flagged']:>6}", "plain cleanlab flags": f"{meta['cleanlab_flagged']:>6}",
                   "surface forms with several types": f"{len(report.surface_forms):>6}",
                   "estimated share of texts with an error": f"{meta['error_rate']:>6.1%}"}, indent="  "))
    worst = report.flagged().head(10)
    if not worst.empty:
        decided = effective_decisions(ws.decisions(snapshot.manifest["project_id"]).read()).set_index("task_id")
        table = worst.assign(given=worst["given_spans"].map(kind.target_text),
                             suggested=worst["suggested_spans"].map(kind.target_text),
                             decision=worst["task_id"].map(lambda t: decision_text(decided.loc[t])
                                                           if t in decided.index else ""))
        print("\nMost likely mislabeled:\n" + table[["task_id", "score", "kind", "given", "suggested", "decision",
                                                     "text"]].to_string(index=False, max_colwidth=50))
    if not report.agreement.empty:
        print("\nSpan agreement between annotators (F1 between pairs):\n" + report.agreement.to_string(index=False))
    out = Path(out_arg) if out_arg else ws.quality.folder(snapshot) / "sentences.parquet"
    if out_arg:
        table = report.sentences.astype({c: str for c in ("worst_words", "given_spans", "suggested_spans")})
        table.to_csv(out, index=False) if out.suffix == ".csv" else table.to_parquet(out, index=False)
    print(f"\nIssue table: {out}")
    return 0


def _scores_line(scores: dict[str, float], chosen: str) -> str:
    """'embedding_lr 0.972 · tfidf_nb 1.365 · ensemble 0.968 (chosen)': each candidate's log-loss."""
    return " · ".join(f"{name} {score:.3f}" + (" (chosen)" * (name == chosen)) for name, score in scores.items())


def _auto_fix_line(ws: Workspace, snapshot: Snapshot, issues: pd.DataFrame) -> str | None:
    """What studio autofix (default threshold) would relabel, counted the way it counts: tasks someone already
    decided are left out, so the two commands give the same number. None when no suggestion is that sure."""
    threshold = ws.cfg.quality.auto_fix_confidence
    fix, _ = auto_fix_plan(issues, ws.decisions(snapshot.manifest["project_id"]).read(), min_confidence=threshold)
    label_issues = flagged_label_issues(issues)
    sure = int(((label_issues["suggested_label"].fillna("") != "") & (label_issues["confidence"] >= threshold)).sum())
    if not sure:
        return None
    if fix.empty:
        return (f"All {sure} flagged labels with a suggestion the model gives {threshold:.2f} or more are decided "
                "already.")
    decided = f" ({sure - len(fix)} more are decided already)" if sure > len(fix) else ""
    return (f"{len(fix)} undecided flagged labels have a suggestion the model gives {threshold:.2f} or more"
            f"{decided}: studio autofix relabels them (undoable decisions).")


def _crossval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--snapshot", default=None, help="snapshot id (default: the newest)")
    p.add_argument("--background", action="store_true", help="start the background job and return")


@command("crossval", "cross-validate the fine-tuned model ([train] settings, [quality] folds trainings) so that "
         "studio quality can use its out-of-sample probabilities", _crossval_args)
def cmd_crossval(ws: Workspace, args: argparse.Namespace) -> int:
    snapshot = snapshot_arg(ws, args.snapshot)
    job = ws.quality.start_crossval(snapshot)
    if args.background:
        print(f"Started job {job.id} (status: {job.folder / 'status.json'}, log: {job.log_file}).")
        return 0
    job = follow(ws, job)
    meta = ws.quality.crossval_meta(snapshot) or {}
    print(f"Cross-validated probabilities of {meta.get('tasks')} tasks (the folds did not learn from the "
          f"{meta.get('excluded', 0)} labels the last quality report flagged): {job.output}\n"
          f"Run studio quality --snapshot {snapshot.id} to use them.")
    return 0


def _autofix_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--snapshot", default=None, help="snapshot id (default: the newest)")
    p.add_argument("--min-confidence", type=float, default=None,
                   help="relabel where the model gives its suggestion at least this probability "
                        "(default: [quality] auto_fix_confidence)")
    p.add_argument("--class", dest="classes", action="append", default=None, metavar="LABEL",
                   help="only tasks with this given label (repeat for several; default: every class)")
    p.add_argument("--author", default=None, help="who takes the decisions (default: your login name)")
    p.add_argument("--send-rest", action="store_true",
                   help="send the other flagged label issues to Label Studio's 'Needs review' tab")
    p.add_argument("--dry-run", action="store_true", help="show what would be relabelled; change nothing")


@command("autofix", "relabel the flagged label issues the model is sure about to its suggestion (undoable "
         "decisions; what someone decided is left alone); optionally send the rest for re-review", _autofix_args)
def cmd_autofix(ws: Workspace, args: argparse.Namespace) -> int:
    import getpass

    snapshot = snapshot_arg(ws, args.snapshot)
    threshold = ws.cfg.quality.auto_fix_confidence if args.min_confidence is None else args.min_confidence
    fix, rest, sent = ws.review.auto_fix(snapshot, author=args.author or getpass.getuser(), min_confidence=threshold,
                                  classes=args.classes, send_rest=args.send_rest, dry_run=args.dry_run)
    verb = "Would relabel" if args.dry_run else "Relabelled"
    print(f"{verb} {len(fix)} of {len(fix) + len(rest)} undecided flagged label issues of snapshot {snapshot.id} "
          f"to the suggestion (model probability >= {threshold:g}).")
    if not fix.empty:
        cols = ["task_id", "given_label", "suggested_label", "confidence", "text"]
        print(fix[[c for c in cols if c in fix]].head(10).to_string(index=False, max_colwidth=60))
    if args.send_rest and args.dry_run:
        print(f"Would send {len(rest)} to the 'Needs review' tab in Label Studio.")
    elif args.send_rest:
        already = f" ({len(rest) - sent} were in it already)" if sent < len(rest) else ""
        print(f"Sent {sent} to the 'Needs review' tab in Label Studio{already}.")
    elif len(rest):
        print(f"{len(rest)} stay for a person: the Quality page, or studio autofix --send-rest.")
    record = ws.review.suggestion_track_record(snapshot)
    print(track_record_line(record, threshold))
    worst = track_record_by(record[record["confidence"] >= threshold], "given_label")
    worst = worst[worst["share"] < 0.9]
    if not worst.empty:
        print("Given labels whose suggestions at this probability people took less than 90% of the time (review "
              "them by hand; --class limits auto-fix to the labels you trust):")
        print(worst.head(10).to_string(index=False))
    return 0


def _rereview_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--snapshot", default=None, help="snapshot id (default: the newest; sync first for new reviews)")


@command("rereview", "the tasks sent to Label Studio's 'Needs review' tab and what annotators did with them "
         "(took the suggestion, kept the label, another label, waiting, task deleted)", _rereview_args)
def cmd_rereview(ws: Workspace, args: argparse.Namespace) -> int:
    from studio.rereview import OUTCOMES

    snapshot = snapshot_arg(ws, args.snapshot)
    outcomes = ws.review.rereview_outcomes(snapshot)
    if outcomes.empty:
        print("Nothing has been sent for re-review yet (Quality page, or studio autofix --send-rest).")
        return 0
    counts = outcomes["outcome"].value_counts()
    print(f"{len(outcomes)} tasks sent for re-review, as of snapshot {snapshot.id}: "
          + ", ".join(f"{name} {int(counts.get(name, 0))}" for name in OUTCOMES))
    cols = ["task_id", "given_label", "suggested_label", "outcome", "new_label", "reviewed_by"]
    print(outcomes[cols].to_string(index=False, max_colwidth=40))
    return 0


def _outdated_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--snapshot", default=None, help="snapshot id (default: the newest)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--confirm", action="store_true", help="take each decision again on this snapshot")
    what.add_argument("--undo", action="store_true", help="undo each decision: the annotators' new label counts")
    p.add_argument("--author", default=None, help="who settles them (default: your login name)")


@command("outdated", "review decisions taken on a label the annotators have changed since (they still apply); "
         "list them, or settle them with --confirm or --undo", _outdated_args)
def cmd_outdated(ws: Workspace, args: argparse.Namespace) -> int:
    import getpass

    snapshot = snapshot_arg(ws, args.snapshot)
    outdated = ws.review.outdated_decisions(snapshot)
    if outdated.empty:
        print(f"No decision is on a label the annotators changed since (snapshot {snapshot.id}).")
        return 0
    cols = ["task_id", "action", "label", "label_then", "label_now", "author", "created_at"]
    print(outdated[cols].to_string(index=False, max_colwidth=40))
    if args.confirm or args.undo:
        n = ws.review.resolve_outdated(snapshot, author=args.author or getpass.getuser(), confirm=args.confirm)
        print(f"{'Confirmed again' if args.confirm else 'Undid'} {n} decision(s).")
    else:
        print(f"{len(outdated)} decision(s) still apply. Settle them with --confirm or --undo.")
    return 0


def _decisions_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", action="store_true", help="the whole log (superseded, undone, undos), not only the "
                                                      "decisions in force")
    p.add_argument("--task", type=int, action="append", default=None, metavar="ID", help="only this task (repeat)")
    p.add_argument("--author", default=None, help="only decisions by this author")


@command("decisions", "the review decisions of the project (who, when, what, why), newest first", _decisions_args)
def cmd_decisions(ws: Workspace, args: argparse.Namespace) -> int:
    from studio.review import decision_history

    history = decision_history(ws.decisions(project_arg(ws).id).read())
    if not args.all:
        history = history[history["state"] == "in force"]
    if args.task:
        history = history[history["task_id"].isin(args.task)]
    if args.author:
        history = history[history["author"] == args.author]
    if history.empty:
        print("No decision matches." if args.all or args.task or args.author else "No decision in force.")
        return 0
    cols = ["created_at", "task_id", "action", "label", "author", "source", "state", "note"]
    shown = history.assign(created_at=history["created_at"].str.slice(0, 19).str.replace("T", " "),
                           label=history["label"].fillna(""), note=history["note"].fillna(""))
    print(shown[cols].to_string(index=False, max_colwidth=50))
    actions = history.loc[history["state"] == "in force", "action"].value_counts()
    print("\nIn force: " + (", ".join(f"{n} {a}" for a, n in actions.items()) or "none")
          + f" ({len(history)} rows shown)")
    return 0
