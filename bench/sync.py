"""Benchmark: sync of a real Label Studio project into snapshots vs a naive page-by-page task listing.

    .venv/bin/python bench/sync.py                 # 10,000 annotated banking77 tasks
    .venv/bin/python bench/sync.py --tasks 2000

Starts its own Label Studio (temporary data folder, free port), imports the tasks with annotations in bulk,
then times in one run: a full sync, a sync with nothing changed, a sync after 1% of annotations changed, and
the naive baseline (the SDK's `tasks.list(fields="all")` pager over every task). Prints figures only.
Targets (2-core machine): full sync of 10,000 annotated tasks <= 15 s; a sync with nothing changed <= 2 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO / ".." / "shared" / "data" / "banking77" / "train.csv"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    import pandas as pd

    from bench.labelstudio_bench import classification_project, running_labelstudio
    from studio.snapshot import SnapshotStore
    from studio.sync import sync_project

    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--keep", action="store_true", help="leave the server running")
    args = parser.parse_args()

    frame = pd.read_csv(DATA).head(args.tasks)
    with running_labelstudio("bench-sync", keep=args.keep) as client:
        project, schema = classification_project(client, "bench-sync", sorted(frame["category"].unique()))
        tasks = [{"data": {"text": t}, "annotations": [{"result": schema.result(c), "lead_time": 2.0}]}
                 for t, c in zip(frame["text"], frame["category"])]
        _, t_import = timed(lambda: client.import_tasks(project.id, tasks, batch_size=2000))
        print(f"imported {len(tasks)} annotated tasks in {t_import:.1f} s", flush=True)

        store = SnapshotStore(Path(tempfile.mkdtemp(prefix="bench-sync-snapshots-")))
        full, t_full = timed(lambda: sync_project(client, store, project.id, full=True))
        same, t_same = timed(lambda: sync_project(client, store, project.id))
        time.sleep(2.5)  # past the watermark margin, so the next sync measures only the 1% that moved
        annotations = full.snapshot.annotations
        changed = annotations.sample(frac=0.01, random_state=0)
        other = schema.classes[0]
        for aid in changed["annotation_id"]:
            client.update_annotation(int(aid), schema.result(other))
        moved, t_moved = timed(lambda: sync_project(client, store, project.id))

        def naive() -> int:
            return sum(1 for _ in client.sdk.tasks.list(project=project.id, fields="all", page_size=100))
        n_naive, t_naive = timed(naive)

        n = len(full.snapshot.tasks)
        print(f"\n{'what':<34}{'seconds':>9}{'tasks/s':>10}  notes")
        print(f"{'full sync (bulk export)':<34}{t_full:>9.2f}{n / t_full:>10.0f}  {full.mode}, "
              f"snapshot {full.snapshot.id}")
        print(f"{'sync, nothing changed':<34}{t_same:>9.2f}{n / t_same:>10.0f}  {same.mode}, "
              f"{same.fetched_tasks} fetched, created={same.created}")
        print(f"{'sync, 1% annotations changed':<34}{t_moved:>9.2f}{n / t_moved:>10.0f}  {moved.mode}, "
              f"{moved.fetched_tasks} fetched, created={moved.created}")
        print(f"{'naive tasks.list(fields=all)':<34}{t_naive:>9.2f}{n_naive / t_naive:>10.0f}  {n_naive} tasks, "
              "no snapshot written")
        print(f"\nnaive / full sync: {t_naive / t_full:.1f}x; full / unchanged: {t_full / t_same:.1f}x; "
              f"full / 1% changed: {t_full / t_moved:.1f}x")
        print(f"targets: full <= 15 s ({'met' if t_full <= 15 else 'missed'}), unchanged <= 2 s "
              f"({'met' if t_same <= 2 else 'missed'}); load average now {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} cores")


if __name__ == "__main__":
    main()
