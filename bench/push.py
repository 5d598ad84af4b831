"""Benchmark: pushing model predictions into a real Label Studio, bulk vs one request per task.

    .venv/bin/python bench/push.py                  # 10,000 banking77 tasks

Starts its own Label Studio, imports N unlabeled tasks, then times `studio.pool.push_pool` (bulk import of
predictions + project model_version/sampling + Data Manager tab) for all N, and, as the baseline in the same
run, one POST /api/predictions per task for a sample of 200 tasks (extrapolated to N). Also checks that Label
Studio then serves the least certain task first. Target (issue): bulk push of 10,000 predictions <= 10 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO / ".." / "shared" / "data" / "banking77" / "train.csv"


def main() -> None:
    import numpy as np
    import pandas as pd

    from bench.labelstudio_bench import classification_project, running_labelstudio
    from studio.pool import push_pool, score_pool

    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=200, help="tasks pushed one request each")
    args = parser.parse_args()

    frame = pd.read_csv(DATA).head(args.tasks)
    classes = sorted(frame["category"].unique())
    with running_labelstudio("bench-push") as client:
        project, schema = classification_project(client, "bench-push", classes)
        client.import_tasks(project.id, [{"data": {"text": t}} for t in frame["text"]], batch_size=2000)
        ids = [t["id"] for t in client.export_tasks(project.id)]
        pool = pd.DataFrame({"task_id": ids, "text": frame["text"].tolist()[:len(ids)]})
        probs = np.random.default_rng(0).dirichlet(np.ones(len(classes)) * 0.2, size=len(pool))
        scored = score_pool(pool, probs, schema.kind, strategy="margin", n=20, model_version="run-bench")

        def timed_push(scored_pool) -> tuple[dict, float, float]:
            """(result, seconds for the prediction import alone, seconds for the whole push_pool)."""
            marks: list[float] = []
            start = time.perf_counter()
            result = push_pool(client, project.id, scored_pool, schema,
                               progress=lambda done, total: marks.append(time.perf_counter()))
            return result, marks[-1] - start, time.perf_counter() - start

        result, t_import, t_bulk = timed_push(scored)
        served = client.next_task(project.id)["id"]
        # The loop turns again: a new run's predictions replace the previous run's.
        probs2 = np.random.default_rng(1).dirichlet(np.ones(len(classes)) * 0.2, size=len(pool))
        rescored = score_pool(pool, probs2, schema.kind, strategy="margin", n=20, model_version="run-bench-2")
        result2, t_import2, t_bulk2 = timed_push(rescored)
        served2 = client.next_task(project.id)["id"]

        sample = scored.pool.head(args.baseline)
        start = time.perf_counter()
        for r in sample.itertuples(index=False):
            client.request("POST", "api/predictions", json_body={
                "task": int(r.task_id), "result": schema.result(r.label), "score": float(r.confidence),
                "model_version": "one-by-one"})
        per_task = (time.perf_counter() - start) / len(sample)

        n = result["pushed"]
        print(f"\nbulk push_pool: {n} predictions imported in {t_import:.2f} s ({n / t_import:.0f}/s); "
              f"{t_bulk:.2f} s incl. project settings and the Data Manager tab")
        print(f"second run's push: import {t_import2:.2f} s; {t_bulk2:.2f} s incl. removing the first run's "
              f"{result2['old_predictions_removed']} predictions")
        print(f"one request per task: {per_task * 1000:.0f} ms each -> {per_task * n:.0f} s for {n} "
              f"({per_task * n / t_bulk:.0f}x slower)")
        print(f"next task served: {served}; least certain task: {int(scored.pool['task_id'].iloc[0])}; after the "
              f"second push: {served2} (least certain {int(rescored.pool['task_id'].iloc[0])}; Label Studio keeps "
              f"serving a task it already handed to this user until it is labeled or its lock expires)")
        print(f"target: bulk push of 10,000 <= 10 s ({'met' if t_import <= 10 and n >= 10_000 else 'see figures'}); "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
