"""`studio curate | train | runs | promote | active`: from curated labels to a model and back."""

from __future__ import annotations

import argparse

from studio.cli.base import bar, command, curate_settings_note, follow, snapshot_arg, warn
from studio.workspace import Workspace


@command("curate", "split, rebalance and export a data version of the newest (or given) snapshot",
         lambda p: p.add_argument("--snapshot", default=None, help="snapshot id (default: the newest)"))
def cmd_curate(ws: Workspace, args: argparse.Namespace) -> int:
    snapshot = snapshot_arg(ws, args.snapshot)
    curate_settings_note(ws)
    prepared = ws.curation.prepare(snapshot, progress=bar("Embedding", unit="text"))
    for warning in [*prepared.split.warnings, ws.review.outdated_warning(snapshot)]:
        warn(warning)
    print(prepared.split.counts.to_string())
    info = prepared.export
    print(f"\nData version {info.version_id} " + ("written" if info.created else "already existed")
          + f" at {info.path}")
    return 0


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--snapshot", default=None, help="snapshot id (default: sync, then the newest)")
    p.add_argument("--no-sync", action="store_true", help="use the newest snapshot without syncing")
    p.add_argument("--background", action="store_true", help="start the background job and return")


@command("train", "train a classifier (a token tagger for an NER project) on the current labels (LoRA by "
         "default): sync, curate with the saved settings, train; the run becomes the current model", _train_args)
def cmd_train(ws: Workspace, args: argparse.Namespace) -> int:
    from training.metrics import RunMetrics, class_scores, entity_scores, model_choice_line
    from training.runs import RunRegistry, run_metrics

    if args.snapshot:
        snapshot = snapshot_arg(ws, args.snapshot)
    else:
        snapshot, note = ws.training.training_snapshot(sync=not args.no_sync, progress=bar("Sync", unit="step"))
        warn(note)
    warn(ws.review.outdated_warning(snapshot))
    curate_settings_note(ws)
    job = ws.training.start_training(snapshot)
    if args.background:
        print(f"Started job {job.id} (status: {job.folder / 'status.json'}, log: {job.log_file}).")
        return 0
    job = follow(ws, job)
    run = RunRegistry(ws.runs_root).get(job.run_id)
    m = RunMetrics.from_json(run.metrics)
    score = entity_scores(m.summary) if m.is_spans else class_scores(m.summary)
    print(f"Run {run.id}: {score} on {m.split} (kept: {m.selected}); now the current model.")
    folder = RunRegistry(ws.runs_root).path(run.id)
    print(f"  {model_choice_line(run_metrics(folder))}")
    print(f"  folder: {folder}")
    return 0


@command("runs", "list training runs, newest first (* = current model)")
def cmd_runs(ws: Workspace, args: argparse.Namespace) -> int:
    from training.metrics import RunMetrics, entity_scores
    from training.runs import RunRegistry

    registry = RunRegistry(ws.runs_root)
    current = registry.current()
    runs = registry.list()
    if not runs:
        print("No runs yet: run studio train.")
    for r in runs:
        mark = "*" if current and current.id == r.id else " "
        m = RunMetrics.from_json(r.metrics)
        if not r.metrics:
            score = r.error
        elif m.is_spans:  # a spans run's accuracy counts words, nearly all "O": entity F1 is its figure
            score = entity_scores(m.summary)
        else:
            score = (f"acc {m.summary.accuracy:.3f} macro-F1 {m.summary.macro_f1:.3f}"
                     if m.summary.accuracy is not None else r.error)
        print(f"{mark} {r.id}  {r.status:<9}  data {r.data_version or '-'}  {score}")
    return 0


@command("promote", "make a run the current model",
         lambda p: p.add_argument("run_id", help="the run's id (see studio runs)"))
def cmd_promote(ws: Workspace, args: argparse.Namespace) -> int:
    from training.runs import RunRegistry

    RunRegistry(ws.runs_root).promote(args.run_id)
    print(f"{args.run_id} is now the current model.")
    return 0


def _active_args(p: argparse.ArgumentParser) -> None:
    from studio.active import DEFAULT_STRATEGY, STRATEGIES
    from studio.learner import SCORERS

    p.add_argument("--strategy", default=DEFAULT_STRATEGY, choices=[k for k, s in STRATEGIES.items() if s.needs_model],
                   help=f"how to pick the batch from the scored tasks (default: {DEFAULT_STRATEGY})")
    p.add_argument("--n", type=int, default=20, help="batch size to preview")
    p.add_argument("--scorer", choices=SCORERS, default=None,
                   help="run = the current training run; fast = the fast learner on today's labels (seconds); "
                        "auto = run if there is one, else fast (default: [active] scorer in studio.toml)")
    p.add_argument("--push", action="store_true", help="push the predictions into Label Studio")


@command("active", "score unlabeled tasks (training run or fast learner), show the next batch, optionally push",
         _active_args)
def cmd_active(ws: Workspace, args: argparse.Namespace) -> int:
    snapshot = snapshot_arg(ws, None)
    scored = ws.active.score_pool(snapshot, strategy=args.strategy, n=args.n, scorer=args.scorer,
                           progress=bar("Predicting", unit="text"))
    batch = scored.batch.assign(rank=scored.batch["rank"] + 1)  # 0-based in the library; people count from 1
    cols = [c for c in ("rank", "task_id", "label", "confidence", "text") if c in batch]
    print(f"Next batch ({scored.strategy}, model {scored.model_version or 'none: cold start'}):")
    print(batch[cols].to_string(index=False, max_colwidth=70))
    if args.push:
        result = ws.active.push_pool(scored, progress=bar("Pushing", unit="task"))
        print(f"Pushed {result['pushed']} predictions as {scored.model_version}; removed "
              f"{result['old_predictions_removed']} of older versions; project set to Uncertainty sampling.")
    return 0
