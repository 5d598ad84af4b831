"""`studio` command line: thin wrappers over the library, each StudioError printed as a message + fix.

    studio up | down | status        run / stop / inspect the embedded Label Studio and the app
    studio sync [--full]             pull the project into a new snapshot
    studio snapshots | diff A B      list snapshots, compare two
    studio import FILE               load CSV / JSONL / parquet / HF dataset into Label Studio
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

from studio.errors import StudioError
from studio.services import bring_up, run_until_stopped
from studio.workspace import Workspace, open_workspace

Handler = Callable[[Workspace, argparse.Namespace], int]
COMMANDS: dict[str, tuple[Handler, str, Callable[[argparse.ArgumentParser], None]]] = {}


def command(name: str, help_text: str, args: Callable[[argparse.ArgumentParser], None] = lambda p: None):
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = (fn, help_text, args)
        return fn
    return register


def _bar(label: str) -> Callable[[int, int], None]:
    from tqdm import tqdm

    bars: list[tqdm] = []  # created on first call, so work that turns out empty prints nothing

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc=label, total=total or None, leave=True))
        bars[0].total = total or None
        bars[0].n = done
        bars[0].refresh()
        if total and done >= total:
            bars[0].close()
    return update


# -- up / down / status ---------------------------------------------------------------------------------------
def _up_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-app", action="store_true", help="start Label Studio and provision, not the app")
    p.add_argument("--detach", action="store_true", help="return after start-up, leave servers running")


@command("up", "start Label Studio (embedded), provision the project and demo data, start the app", _up_args)
def cmd_up(ws: Workspace, args: argparse.Namespace) -> int:
    from studio.labelstudio.server import credentials_path

    running = bring_up(ws, app=not args.no_app, progress=_bar("Importing demo tasks"))
    print("\n  Label Studio : " + ws.cfg.labelstudio.base_url + f"/projects/{running.project.id}")
    if running.app:
        print(f"  Studio app   : http://{ws.cfg.app.host}:{ws.cfg.app.port}")
    if running.backend:
        print("  ML backend   : " + ws.cfg.mlbackend.url + " (connected to the project)")
    if running.login:
        print(f"  Login        : {running.login}, password and API token in {credentials_path(ws.state_dir)}"
              " (readable only by you)")
    if args.detach:
        return 0
    print("\nPress Ctrl-C to stop.", flush=True)
    run_until_stopped(ws, running)
    return 0


@command("down", "stop the embedded Label Studio started by `studio up --detach`")
def cmd_down(ws: Workspace, args: argparse.Namespace) -> int:
    from studio.labelstudio.server import stop_server

    print("Stopped Label Studio." if stop_server(ws.state_dir) else "No embedded Label Studio was running.")
    return 0


@command("status", "is Label Studio reachable, which project, how many tasks and snapshots")
def cmd_status(ws: Workspace, args: argparse.Namespace) -> int:
    print(f"Label Studio: {ws.url} ({'embedded' if ws.cfg.labelstudio.embedded else 'external'})")
    user = ws.client.check()
    project = ws.project()
    print(f"  logged in as {user.get('email')}; project '{project.title}' (id {project.id}), "
          f"{project.task_number} tasks")
    latest = ws.latest_snapshot(project.id)
    print(f"Snapshots: {len(ws.store.ids())}; newest: "
          + (f"{latest.id} {latest.manifest['counts']}" if latest else "none (run `studio sync`)"))
    return 0


# -- sync / snapshots / diff / import ----------------------------------------------------------------------------
@command("sync", "pull every task and annotation into a new snapshot",
         lambda p: p.add_argument("--full", action="store_true", help="ignore the previous snapshot"))
def cmd_sync(ws: Workspace, args: argparse.Namespace) -> int:
    start = time.perf_counter()
    result = ws.sync(full=args.full, progress=_bar("Sync"))
    m = result.snapshot.manifest
    state = "new snapshot" if result.created else "unchanged, same snapshot"
    print(f"{result.snapshot.id}: {state} ({result.mode} sync, {result.fetched_tasks} tasks fetched, "
          f"{time.perf_counter() - start:.1f} s)")
    print("  counts: " + ", ".join(f"{k} {v}" for k, v in m["counts"].items()))
    if m["validation"]:
        print("  validation: " + ", ".join(f"{k} {v}" for k, v in m["validation"].items())
              + f" (listed in {ws.store.root / result.snapshot.id / 'validation.parquet'})")
    return 0


@command("snapshots", "list snapshots, newest first")
def cmd_snapshots(ws: Workspace, args: argparse.Namespace) -> int:
    history = ws.store.history()
    print(history.to_string(index=False) if not history.empty else "No snapshots yet: run `studio sync`.")
    return 0


def _diff_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("old")
    p.add_argument("new")


@command("diff", "annotations added, changed and removed between two snapshots", _diff_args)
def cmd_diff(ws: Workspace, args: argparse.Namespace) -> int:
    from studio.snapshot import diff_snapshots

    diff = diff_snapshots(ws.store.load(args.old), ws.store.load(args.new))
    print(json.dumps(diff.summary(), indent=2))
    for name in ("added", "changed", "removed"):
        frame = getattr(diff, name)
        if not frame.empty:
            print(f"\n{name}:\n{frame.head(20).to_string(index=False)}")
    return 0


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="CSV, JSONL, parquet, or a folder saved with datasets' save_to_disk")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default=None, help="optional column of labels")
    p.add_argument("--labels-as", choices=["annotations", "predictions"], default="annotations")
    p.add_argument("--batch-size", type=int, default=1000)


@command("import", "load a data file into the Label Studio project, in batches", _import_args)
def cmd_import(ws: Workspace, args: argparse.Namespace) -> int:
    from studio.importer import build_tasks, read_table
    from studio.labeling import parse_labeling_config

    project = ws.project()
    schema = parse_labeling_config(project.label_config)
    tasks = build_tasks(read_table(args.file), schema, text_column=args.text_column,
                        label_column=args.label_column, labels_as=args.labels_as,
                        model_version=f"import-{Path(args.file).stem}")
    count = ws.client.import_tasks(project.id, tasks, batch_size=args.batch_size, progress=_bar("Import"))
    print(f"Imported {count} tasks into '{project.title}' (id {project.id}).")
    return 0


# -- review, curate, train, runs ------------------------------------------------------------------------------
def _snapshot(ws: Workspace, snapshot_id: str | None):
    from studio.errors import SnapshotNotFound

    if snapshot_id:
        return ws.store.load(snapshot_id)
    latest = ws.latest_snapshot(ws.project().id)
    if latest is None:
        raise SnapshotNotFound("No snapshot yet.", hint="run `studio sync` first")
    return latest


def _quality_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--snapshot", default=None)
    p.add_argument("--out", default=None, help="write the issue table here (.parquet or .csv)")


@command("quality", "label issues, outliers, near-duplicates, class summary and annotator consensus", _quality_args)
def cmd_quality(ws: Workspace, args: argparse.Namespace) -> int:
    snapshot = _snapshot(ws, args.snapshot)
    assessment = ws.assess(snapshot, progress=_bar("Embedding"))
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
    snapshot = _snapshot(ws, args.snapshot)
    job = ws.start_crossval(snapshot)
    if args.background:
        print(f"Started job {job.id} (status: {job.folder / 'status.json'}, log: {job.log_file}).")
        return 0
    job = _follow(ws, job)
    meta = ws.crossval_meta(snapshot) or {}
    print(f"Cross-validated probabilities of {meta.get('tasks')} tasks (the folds did not learn from the "
          f"{meta.get('excluded', 0)} labels the last quality report flagged): {job.output}\n"
          f"Run `studio quality --snapshot {snapshot.id}` to use them.")
    return 0


@command("curate", "split, rebalance and export a data version of the newest (or given) snapshot",
         lambda p: p.add_argument("--snapshot", default=None))
def cmd_curate(ws: Workspace, args: argparse.Namespace) -> int:
    prepared = ws.prepare(_snapshot(ws, args.snapshot), progress=_bar("Embedding"))
    for warning in prepared.split.warnings:
        print(f"warning: {warning}")
    print(prepared.split.counts.to_string())
    info = prepared.export
    print(f"\nData version {info.version_id} " + ("written" if info.created else "already existed")
          + f" at {info.path}")
    return 0


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--snapshot", default=None, help="snapshot id (default: sync, then the newest)")
    p.add_argument("--no-sync", action="store_true", help="use the newest snapshot without syncing")
    p.add_argument("--background", action="store_true", help="start the background job and return")


@command("train", "train on current labels: sync, curate with the saved settings, LoRA-train", _train_args)
def cmd_train(ws: Workspace, args: argparse.Namespace) -> int:
    from training.runs import RunRegistry

    if args.snapshot or args.no_sync:
        snapshot = _snapshot(ws, args.snapshot)
    else:
        snapshot = ws.sync(progress=_bar("Sync")).snapshot
    job = ws.start_training(snapshot)
    if args.background:
        print(f"Started job {job.id} (status: {job.folder / 'status.json'}, log: {job.log_file}).")
        return 0
    job = _follow(ws, job)
    run = RunRegistry(ws.runs_root).get(job.run_id)
    m = {"accuracy": float("nan"), "macro_f1": float("nan"), **run.metrics}
    print(f"Run {run.id}: accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f} on {m.get('split')} "
          f"(kept: {m.get('selected')}); now the current model.")
    print(f"  folder: {RunRegistry(ws.runs_root).path(run.id)}")
    return 0


def _follow(ws: Workspace, job):
    """Show a background job's progress until it ends (Ctrl-C cancels it); return it if it succeeded.

    The foreground commands run as the same job the app starts, so they hold the same lock: a second training
    or cross-validation, from the app or another terminal, is refused while this one runs."""
    from tqdm import tqdm

    from studio.errors import TrainingError
    from training.jobs import cancel_job, get_job

    print(f"Job {job.id} (log: {job.log_file}); Ctrl-C cancels it.")
    bar, phase = None, None
    try:
        while job.active:
            time.sleep(0.5)
            job = get_job(job.id, jobs_root=ws.jobs_root)
            if job.max_steps and (bar is None or job.phase != phase):
                if bar is not None:
                    bar.close()
                bar, phase = tqdm(desc=job.phase or "training", total=job.max_steps, unit="step"), job.phase
            if bar is not None:
                bar.n = job.step
                bar.refresh()
    except KeyboardInterrupt:
        print("\nCancelling ...")
        job = cancel_job(job.id, jobs_root=ws.jobs_root)
    finally:
        if bar is not None:
            bar.close()
    if job.state != "succeeded":
        raise TrainingError(f"Job {job.id} {job.state}: {job.error or 'stopped'}.",
                            hint=f"the log is {job.log_file}; the current model and stored results are unchanged")
    return job


@command("runs", "list training runs, newest first (* = current model)")
def cmd_runs(ws: Workspace, args: argparse.Namespace) -> int:
    from training.runs import RunRegistry

    registry = RunRegistry(ws.runs_root)
    current = registry.current()
    runs = registry.list()
    if not runs:
        print("No runs yet: run `studio train`.")
    for r in runs:
        mark = "*" if current and current.id == r.id else " "
        score = (f"acc {r.metrics['accuracy']:.3f} macro-F1 {r.metrics['macro_f1']:.3f}"
                 if "accuracy" in r.metrics else r.error)
        print(f"{mark} {r.id}  {r.status:<9}  data {r.data_version or '-'}  {score}")
    return 0


@command("promote", "make a run the current model", lambda p: p.add_argument("run_id"))
def cmd_promote(ws: Workspace, args: argparse.Namespace) -> int:
    from training.runs import RunRegistry

    RunRegistry(ws.runs_root).promote(args.run_id)
    print(f"{args.run_id} is now the current model.")
    return 0


def _active_args(p: argparse.ArgumentParser) -> None:
    from studio.active import DEFAULT_STRATEGY, STRATEGIES
    from studio.learner import SCORERS

    p.add_argument("--strategy", default=DEFAULT_STRATEGY, choices=[k for k, s in STRATEGIES.items() if s.needs_model])
    p.add_argument("--n", type=int, default=20, help="batch size to preview")
    p.add_argument("--scorer", choices=SCORERS, default=None,
                   help="run = the current training run; fast = the fast learner on today's labels (seconds); "
                        "auto = run if there is one, else fast (default: [active] scorer in studio.toml)")
    p.add_argument("--push", action="store_true", help="push the predictions into Label Studio")


@command("active", "score unlabeled tasks (training run or fast learner), show the next batch, optionally push", _active_args)
def cmd_active(ws: Workspace, args: argparse.Namespace) -> int:
    snapshot = _snapshot(ws, None)
    scored = ws.score_pool(snapshot, strategy=args.strategy, n=args.n, scorer=args.scorer,
                           progress=_bar("Predicting"))
    cols = [c for c in ("rank", "task_id", "label", "confidence", "text") if c in scored.batch]
    print(f"Next batch ({scored.strategy}, model {scored.model_version or 'none: cold start'}):")
    print(scored.batch[cols].to_string(index=False, max_colwidth=70))
    if args.push:
        result = ws.push_pool(scored, progress=_bar("Pushing"))
        print(f"Pushed {result['pushed']} predictions as {scored.model_version}; removed "
              f"{result['old_predictions_removed']} of older versions; project set to Uncertainty sampling.")
    return 0


@command("mlbackend", "serve the ML backend Label Studio calls (/health, /setup, /predict, /webhook)")
def cmd_mlbackend(ws: Workspace, args: argparse.Namespace) -> int:
    import logging

    from studio.mlbackend import MLBackend, make_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = ws.cfg.mlbackend
    server = make_server(MLBackend(ws), cfg.host, cfg.port)
    print(f"ML backend on {cfg.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Annotation-to-training data studio")
    parser.add_argument("--config", default=None, help="studio.toml to use (default: ./studio.toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text, add_args) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        ws = open_workspace(args.config)
        return COMMANDS[args.command][0](ws, args)
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
