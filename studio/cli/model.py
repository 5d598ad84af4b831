"""`studio curate | train | runs | promote | active`: from curated labels to a model and back."""

from __future__ import annotations

import argparse

from studio.cli.base import bar, command, curate_settings_note, follow, positive_int, snapshot_arg, warn
from studio.workspace import Workspace


def _curate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--snapshot", default=None, help="snapshot id (default: the newest)")
    p.add_argument("--resplit", action="store_true",
                   help="assign every task a split afresh with the current settings (tasks otherwise keep the "
                        "split earlier versions gave them); prints what moves, keeps the old assignment in "
                        "split_history/")
    p.add_argument("--dry-run", action="store_true", help="show the split (and what would move) without exporting")


@command("curate", "split, rebalance and export a data version of the newest (or given) snapshot; a task keeps "
         "its split across versions", _curate_args)
def cmd_curate(ws: Workspace, args: argparse.Namespace) -> int:
    from studio.split_ledger import moved_count, split_summary

    snapshot = snapshot_arg(ws, args.snapshot)
    curate_settings_note(ws)
    prepared = ws.curation.prepare(snapshot, progress=bar("Embedding", unit="text"), export=not args.dry_run,
                                   resplit=args.resplit)
    for warning in [*prepared.split.warnings, prepared.split_note, ws.review.outdated_warning(snapshot)]:
        warn(warning)
    print(prepared.split.counts.to_string())
    print(f"\n{split_summary(prepared.split, prepared.split_moves)}")
    if args.resplit:
        print(f"Re-split: {moved_count(prepared.split_moves)} task(s) change split (rows: from, columns: to):")
        print(prepared.split_moves.to_string())
    info = prepared.export
    if info is None:
        print("Dry run: nothing exported, no split recorded.")
        return 0
    test = info.manifest.get("test_set", {})
    print(f"\nData version {info.version_id} " + ("written" if info.created else "already existed")
          + f" at {info.path}" + (f" (test set {test['hash']}: {test['tasks']} tasks)" if test.get("hash") else ""))
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
    if m.is_generation:
        from training.metrics import generation_scores

        g = m.generation
        score = (f"{generation_scores(g.fine_tuned)} (base: ROUGE-L {g.base.rouge_l:.3f})"
                 if g.evaluated and g.base.rouge_l is not None else generation_scores(g.fine_tuned))
    else:
        score = entity_scores(m.summary) if m.is_spans else class_scores(m.summary)
    print(f"Run {run.id}: {score} on {m.split} (kept: {m.selected}); now the current model.")
    folder = RunRegistry(ws.runs_root).path(run.id)
    print(f"  {model_choice_line(run_metrics(folder))}")
    print(f"  folder: {folder}")
    return 0


@command("runs", "list training runs, newest first (* = current model); --compare scores runs on the test "
         "tasks they share",
         lambda p: p.add_argument("--compare", nargs="+", metavar="RUN", default=None,
                                  help="two or more run ids: their scores on the test tasks all of them predicted"))
def cmd_runs(ws: Workspace, args: argparse.Namespace) -> int:
    from training.metrics import RunMetrics, entity_scores
    from training.runs import RunRegistry

    registry = RunRegistry(ws.runs_root)
    if args.compare:
        from training.compare import common_scores

        common = common_scores({run: registry.get(run).path for run in args.compare})
        print(common.note)
        if common.n:
            print(common.scores.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        return 0
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
        elif m.is_generation:
            from training.metrics import generation_scores

            score = generation_scores(m.generation.fine_tuned)
        else:
            score = (f"acc {m.summary.accuracy:.3f} macro-F1 {m.summary.macro_f1:.3f}"
                     if m.summary.accuracy is not None else r.error)
        test = f"  test set {r.test_set}" if r.test_set else ""
        print(f"{mark} {r.id}  {r.status:<9}  data {r.data_version or '-'}  {score}{test}")
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
    p.add_argument("--n", type=positive_int, default=20, help="batch size to preview")
    p.add_argument("--scorer", choices=SCORERS, default=None,
                   help="run = the current training run; fast = the fast learner on today's labels (seconds); "
                        "auto = run if there is one, else fast (default: [active] scorer in studio.toml)")
    p.add_argument("--push", action="store_true", help="push the predictions into Label Studio")
    p.add_argument("--by-confidence", action="store_true",
                   help="instruction -> response projects: draft 3x n diverse prompts and keep the n least "
                        "confident drafts (default: n diverse prompts)")


@command("active", "score unlabeled tasks (training run or fast learner), show the next batch, optionally push; "
         "for an instruction -> response project: draft answers to diverse unanswered prompts", _active_args)
def cmd_active(ws: Workspace, args: argparse.Namespace) -> int:
    snapshot = snapshot_arg(ws, None)
    if snapshot.schema.kind.name == "generation":
        return _drafts(ws, snapshot, args)
    scored = ws.active.score_pool(snapshot, strategy=args.strategy, n=args.n, scorer=args.scorer,
                           progress=bar("Predicting", unit="text"))
    batch = scored.batch.assign(rank=scored.batch["rank"] + 1)  # 0-based in the library; people count from 1
    if "top1" in batch:  # what the annotator will see: the model's answer pre-selected, or nothing
        batch["pre-selected"] = batch["top1"].ge(ws.cfg.active.preannotate_threshold).map({True: "yes", False: "no"})
    cols = [c for c in ("rank", "task_id", "label", "top1", "confidence", "pre-selected", "text") if c in batch]
    print(f"Next batch ({scored.strategy}, model {scored.model_version or 'none: cold start'}; top1 = the model's "
          "probability of the label, margin = top-1 minus top-2):")
    # "confidence" is the library's column name for the margin; printed as what it is
    print(batch[cols].rename(columns={"confidence": "margin"}).to_string(index=False, max_colwidth=70))
    if args.push:
        from studio.pool import push_summary

        result = ws.active.push_pool(scored, progress=bar("Pushing", unit="task"))
        print(push_summary(result, strategy=scored.strategy, model_version=scored.model_version))
    return 0


def _drafts(ws: Workspace, snapshot, args: argparse.Namespace) -> int:
    """`studio active` on an instruction -> response project: drafts for diverse prompts, optionally pushed."""
    batch = ws.active.draft_pool(snapshot, n=args.n, by_confidence=args.by_confidence,
                                 progress=bar("Drafting", unit="prompt"))
    shown = batch.pool.assign(rank=batch.pool["rank"] + 1)
    print(f"Drafts by {batch.model_version} for {len(shown)} prompts ({batch.strategy}):")
    print(shown[["rank", "task_id", "confidence", "text", "draft"]].to_string(index=False, max_colwidth=60))
    if args.push:
        result = ws.active.push_drafts(batch, progress=bar("Pushing", unit="task"))
        print(f"Pushed {result['pushed']} drafts as {batch.model_version}: the 'Drafts to correct' tab in Label "
              "Studio lists them; experts edit and submit.")
    edits = ws.active.draft_edits(snapshot)[1]
    if len(edits):
        print("\nHow much experts changed earlier drafts (normalised edit distance, 0 = unchanged):")
        print(edits.to_string(index=False))
    return 0


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", default=None, help="the run whose answers are judged (default: the current run)")
    p.add_argument("--against", default="base", help="the other side: 'base' (the base model, default) or a run id")
    p.add_argument("--results", metavar="COMPARISON", default=None,
                   help="sync a comparison's Label Studio project and print its win rates instead")
    p.add_argument("--list", action="store_true", help="list this project's comparisons")


@command("compare", "people judge two models' answers: create a pairwise evaluation project in Label Studio "
         "(instruction -> response projects), or print a comparison's win rates", _compare_args)
def cmd_compare(ws: Workspace, args: argparse.Namespace) -> int:
    from training.runs import RunRegistry

    if args.list:
        for c in ws.evaluation.store.list():
            print(f"{c.id}  {c.system_a} vs {c.system_b}  {len(c.items)} prompts  Label Studio project "
                  f"{c.project_id}  {c.created_at}")
        return 0
    if args.results:
        r = ws.evaluation.results(args.results)
        print(f"{r.system_a} vs {r.system_b}: {len(r.judgments)} judgments on {r.tasks_judged} of {r.tasks_total} "
              "prompts")
        for side in (r.system_a, r.system_b):
            low, high = r.interval[side]
            print(f"  {side}: {r.wins[side]} wins, win rate {r.win_rate[side]:.2f} (ties count half; 95% interval "
                  f"{low:.2f}-{high:.2f})")
        agreement = "n/a" if r.agreement is None else f"{r.agreement:.0%}"
        print(f"  ties: {r.ties}; judges agree on {agreement} of the pairs of judgments of one prompt")
        return 0
    run = args.run or getattr(RunRegistry(ws.runs_root).current(), "id", None)
    if run is None:
        from studio.errors import EmptyDataError

        raise EmptyDataError("There is no run to compare.", hint="train one first: studio train")
    made = ws.evaluation.compare(run, args.against)
    print(f"Created '{made.project_title}' (Label Studio project {made.project_id}) with {len(made.items)} prompts; "
          f"sides are randomised per prompt. Judges: {ws.url}/projects/{made.project_id}")
    print(f"Then: studio compare --results {made.id}")
    return 0
