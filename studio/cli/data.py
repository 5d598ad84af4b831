"""`studio sync | snapshots | diff | import`: getting data in and snapshotting it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from studio.cli.base import aligned, bar, command, positive_int, warn
from studio.workspace import Workspace


@command("sync", "pull every task and annotation into a new snapshot",
         lambda p: p.add_argument("--full", action="store_true", help="ignore the previous snapshot"))
def cmd_sync(ws: Workspace, args: argparse.Namespace) -> int:
    start = time.perf_counter()
    result = ws.sync(full=args.full, progress=bar("Sync", unit="step"))
    m = result.snapshot.manifest
    state = "new snapshot" if result.created else "unchanged, same snapshot"
    print(f"{result.snapshot.id}: {state} ({result.mode} sync, {result.fetched_tasks} tasks fetched, "
          f"{time.perf_counter() - start:.1f} s)")
    print("  counts: " + ", ".join(f"{k} {v}" for k, v in m["counts"].items()))
    if m["validation"]:
        print("  validation: " + ", ".join(f"{k} {v}" for k, v in m["validation"].items())
              + f" (listed in {ws.store.root / result.snapshot.id / 'validation.parquet'})")
    warn(result.note or None)
    warn(ws.review.outdated_warning(result.snapshot))
    return 0


@command("snapshots", "list snapshots, newest first")
def cmd_snapshots(ws: Workspace, args: argparse.Namespace) -> int:
    history = ws.store.history()
    print(history.to_string(index=False) if not history.empty else "No snapshots yet: run studio sync.")
    for problem in ws.store.damaged():
        warn(f"{problem} It is left out above; `studio sync --full` writes the newest again.")
    return 0


def _diff_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("old", help="the earlier snapshot's id (see studio snapshots)")
    p.add_argument("new", help="the later snapshot's id")


@command("diff", "annotations added, changed and removed between two snapshots", _diff_args)
def cmd_diff(ws: Workspace, args: argparse.Namespace) -> int:
    from studio.snapshot import diff_snapshots

    diff = diff_snapshots(ws.store.load(args.old), ws.store.load(args.new))
    print(aligned({name.replace("_", " "): n for name, n in diff.summary().items()}))
    for name in ("added", "changed", "removed"):
        frame = getattr(diff, name)
        if not frame.empty:
            print(f"\n{name}:\n{frame.head(20).to_string(index=False)}")
    return 0


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="CSV, JSONL, parquet, CoNLL/BIO (.conll, .bio, .iob: one 'token tag' line per "
                                "token, a blank line between sentences), or a folder saved with datasets' "
                                "save_to_disk")
    p.add_argument("--format", choices=["csv", "jsonl", "parquet", "conll"], default=None,
                   help="read the file as this format whatever its suffix (e.g. conll for a .txt of token-tag "
                        "lines); default: from the suffix")
    p.add_argument("--text-column", default="text",
                   help="column holding the text to label (default: text; an instruction -> response project takes "
                        "prompt, instruction, question or input when there is no text column)")
    p.add_argument("--label-column", default=None,
                   help="column of labels; default: none for classification projects, 'spans' (character "
                        "spans; a CoNLL file's entities) for named-entity projects when the file has it, and "
                        "response, completion, output or answer for instruction -> response projects (a "
                        "'messages' chat column is read as system/user/assistant turns)")
    p.add_argument("--no-labels", action="store_true",
                   help="import the texts only, without the labels of the file (a CoNLL file's entities too)")
    p.add_argument("--labels-as", choices=["annotations", "predictions"], default="annotations",
                   help="the label column is people's labels (annotations, the default) or a model's (predictions, "
                        "shown to annotators as suggestions; for answers: drafts the experts correct)")
    p.add_argument("--batch-size", type=positive_int, default=1000,
                   help="tasks per request to Label Studio (default: 1000)")


@command("import", "load a data file into the Label Studio project, in batches", _import_args)
def cmd_import(ws: Workspace, args: argparse.Namespace) -> int:
    from studio.importer import (IMPORT_KEY, MESSAGES_COLUMN, build_tasks, chats_to_pairs, file_format,
                                 label_column_for, not_yet_imported, read_table, text_column_for)
    from studio.labeling import parse_labeling_config

    project = ws.project()
    schema = parse_labeling_config(project.label_config)
    # Everything is read and checked before the first request, so a bad file imports nothing.
    fmt = file_format(args.file, args.format)
    table = read_table(args.file, format=args.format)
    if schema.kind.name == "generation" and MESSAGES_COLUMN in table.columns:
        table = chats_to_pairs(table, context=schema.context_field or "system")
    text_column = text_column_for(table, schema, requested=args.text_column)
    label_column = label_column_for(table, schema, requested=args.label_column, source_format=fmt)
    if args.no_labels and label_column:
        # Texts only: the labels must not ride along as task data either.
        table, label_column = table.drop(columns=[label_column], errors="ignore"), None
    tasks = build_tasks(table, schema, text_column=text_column, label_column=label_column,
                        labels_as=args.labels_as, model_version=f"import-{Path(args.file).stem}")
    # A re-run (after a killed import, or twice by mistake) imports only the rows not in the project yet.
    existing = ws.client.task_data_values(project.id, IMPORT_KEY) if project.task_number else set()
    todo = not_yet_imported(tasks, existing)
    if len(todo) < len(tasks):
        print(f"{len(tasks) - len(todo)} of {len(tasks)} rows are in the project already (imported before, same "
              "content): skipped.")
    tasks = todo
    count = ws.client.import_tasks(project.id, tasks, batch_size=args.batch_size,
                                   progress=bar("Import", unit="task")) if tasks else 0
    print(f"Imported {count} tasks into '{project.title}' (id {project.id}).")
    if label_column:
        labeled = sum(1 for task in tasks if args.labels_as in task)
        print(f"  {labeled} came with {args.labels_as} from column '{label_column}'"
              + (f", {count - labeled} unlabeled." if count > labeled else "."))
    return 0
