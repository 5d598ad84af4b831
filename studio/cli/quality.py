"""`studio quality | crossval`: label quality."""

from __future__ import annotations

import argparse
from pathlib import Path

from studio.cli.base import bar, command, follow, snapshot_arg
from studio.workspace import Workspace


def _quality_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--snapshot", default=None)
    p.add_argument("--out", default=None, help="write the issue table here (.parquet or .csv)")


@command("quality", "label issues, outliers, near-duplicates, class summary and annotator consensus", _quality_args)
def cmd_quality(ws: Workspace, args: argparse.Namespace) -> int:
    snapshot = snapshot_arg(ws, args.snapshot)
    assessment = ws.assess(snapshot, progress=bar("Embedding"))
    issues = assessment.issues
    flagged = issues[issues["is_issue"]]
    print(f"Snapshot {snapshot.id}: {assessment.meta['n_labeled']} labeled tasks; probabilities from "
          f"{assessment.meta['model']} (log-loss {assessment.meta['model_scores']})")
    if assessment.meta.get("external"):
        print("  'external' = the fine-tuned model, cross-validated in "
              f"{assessment.meta['external'].get('folds')} folds (`studio crossval`)")
    for warning in assessment.meta.get("warnings", []):
        print(f"warning: {warning}")
    print(flagged["issue_type"].value_counts().rename("flagged").to_string())
    cols = ["task_id", "given_label", "suggested_label", "score", "text"]
    worst = flagged[flagged["issue_type"] == "label_issue"].sort_values("score").head(10)
    if not worst.empty:
        print("\nMost likely mislabeled:\n" + worst[cols].to_string(index=False, max_colwidth=60))
    if not assessment.annotators.empty:
        print("\nAnnotators (CROWDLAB quality, best first):\n" + assessment.annotators.to_string(index=False))
    out = Path(args.out) if args.out else ws.state_dir / "quality" / snapshot.id / "issues.parquet"
    if args.out:
        table = issues.assign(annotators=issues["annotators"].astype(str))
        table.to_csv(out, index=False) if out.suffix == ".csv" else table.to_parquet(out, index=False)
    print(f"\nIssue table: {out}")
    return 0


def _crossval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--snapshot", default=None, help="snapshot id (default: the newest)")
    p.add_argument("--background", action="store_true", help="start the background job and return")


@command("crossval", "cross-validate the fine-tuned model ([train] settings, [quality] folds trainings) so that "
         "`studio quality` can use its out-of-sample probabilities", _crossval_args)
def cmd_crossval(ws: Workspace, args: argparse.Namespace) -> int:
    snapshot = snapshot_arg(ws, args.snapshot)
    job = ws.start_crossval(snapshot)
    if args.background:
        print(f"Started job {job.id} (status: {job.folder / 'status.json'}, log: {job.log_file}).")
        return 0
    job = follow(ws, job)
    meta = ws.crossval_meta(snapshot) or {}
    print(f"Cross-validated probabilities of {meta.get('tasks')} tasks (the folds did not learn from the "
          f"{meta.get('excluded', 0)} labels the last quality report flagged): {job.output}\n"
          f"Run `studio quality --snapshot {snapshot.id}` to use them.")
    return 0

