"""Benchmark: how the studio's costs grow with the project, on Label Studio's SQLite and on PostgreSQL.

    .venv/bin/python bench/scale.py                                   # 1k, 10k and 100k tasks, both databases
    .venv/bin/python bench/scale.py --sizes 1000 10000 --databases sqlite
    .venv/bin/python bench/scale.py --out bench/results/scale.json    # also write every figure as JSON

Data: banking77's training texts (10,003, 77 intents), each with one annotation of its own intent; past 10,003
tasks the texts repeat with a suffix (" #2", " #3", ...) so every task's text is distinct (the embedding cache
cannot reuse one text for another). For each size and database, a fresh Label Studio (temp folder, free port)
and a fresh studio state folder; in that one run:

  import            the tasks with their annotations (bulk import, 5,000 a request)
  full sync         `Workspace.sync(full=True)`: the bulk export into a snapshot
  unchanged sync    the next sync, nothing changed
  1% changed sync   after 1% of the annotations were changed (changed through the API, not timed)
  push              predictions for every task (`studio.pool.push_pool`, random class probabilities)
  push again        a second model version's predictions, which replace the first's
and on SQLite only (neither step talks to Label Studio): the quality pass cold (embeddings computed) and warm
(`Workspace.quality.assess`, embeddings from the cache), and curate/export (`Workspace.curation.prepare`).

For every step: seconds, and the peak resident memory of the studio (this process) and of Label Studio (its
processes) during the step (Linux: /proc/<pid>/clear_refs resets the peak, VmHWM reads it). Then, per step, the
growth factor from 10k to 100k tasks (10.0 = linear) and the issue's targets at 100k.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO / ".." / "shared" / "data" / "banking77" / "train.csv"

#: The issue's targets at 100k tasks on a 2-core machine (seconds), and the growth allowed (1.3x linear).
TARGETS_S = {"full sync": 180, "unchanged sync": 5, "push again": 120, "quality (warm)": 300}
MAX_GROWTH = 13.0
RSS_LIMIT_MB = 8 * 1024


# -- memory ---------------------------------------------------------------------------------------------------
def _group_pids(pgid: int | None) -> list[int]:
    if pgid is None:
        return []
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _reset_peak(pids: list[int]) -> None:
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            pass


def _peak_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Steps:
    """Times each step and records the peak memory of this process and of Label Studio's processes."""

    def __init__(self, label: str, server_pgid: int | None) -> None:
        self.label, self.server_pgid, self.rows = label, server_pgid, []

    def run(self, name: str, fn, note=lambda out: ""):
        server = _group_pids(self.server_pgid)
        _reset_peak([os.getpid(), *server])
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
        row = {"step": name, "seconds": round(seconds, 2), "studio_peak_mb": round(_peak_mb([os.getpid()])),
               "labelstudio_peak_mb": round(_peak_mb(server)), "load": round(os.getloadavg()[0], 1),
               "note": note(out)}
        self.rows.append(row)
        print(f"  {self.label:<22}{name:<18}{seconds:>9.1f} s  studio {row['studio_peak_mb']:>6} MB  "
              f"Label Studio {row['labelstudio_peak_mb']:>6} MB  load {row['load']:.1f}  {row['note']}", flush=True)
        return out


# -- one size on one database ---------------------------------------------------------------------------------
def tasks_of(size: int):
    import pandas as pd

    base = pd.read_csv(DATA)
    rows = [(text if i < len(base) else f"{text} #{i // len(base) + 1}", label)
            for i, (text, label) in enumerate(zip(base["text"].tolist() * (size // len(base) + 1),
                                                    base["category"].tolist() * (size // len(base) + 1)))
            if i < size]
    return rows, sorted(base["category"].unique())


def one_run(size: int, database: str, *, quality: bool) -> list[dict]:
    import numpy as np
    import pandas as pd

    from bench.labelstudio_bench import classification_project
    from studio.config import LabelStudioConfig, StudioConfig
    from studio.labelstudio.client import LabelStudioClient
    from studio.labelstudio.server import server_dir, start_server, stop_server
    from studio.pool import push_pool, score_pool
    from studio.workspace import Workspace
    from tests.conftest import free_port

    rows, classes = tasks_of(size)
    state = Path(tempfile.mkdtemp(prefix=f"bench-scale-{database}-{size}-"))
    state.chmod(0o711)  # as root, PostgreSQL runs as its own user and must pass through
    cfg = LabelStudioConfig(port=free_port(), start_timeout_s=600, database=database)
    creds, pid = start_server(state / "ls", cfg)
    try:
        client = LabelStudioClient(cfg.base_url, creds.token, timeout=1800)
        title = f"scale-{size}"
        project, schema = classification_project(client, title, classes)
        ws = Workspace(StudioConfig.from_dict({
            "labelstudio": {"url": cfg.base_url, "token": creds.token, "project_title": title,
                            "timeout_s": 1800},
            "paths": {"state_dir": str(state / "studio")}, "demo": {"enabled": False}}, root=REPO))
        steps = Steps(f"{size:,} {database}", os.getpgid(int((server_dir(state / 'ls') / 'server.pid').read_text())))
        tasks = [{"data": {"text": t}, "annotations": [{"result": schema.result(c), "lead_time": 2.0}]}
                 for t, c in rows]
        steps.run("import", lambda: client.import_tasks(project.id, tasks, batch_size=5000))
        full = steps.run("full sync", lambda: ws.sync(full=True), lambda r: f"{len(r.snapshot.tasks)} tasks")
        steps.run("unchanged sync", lambda: ws.sync(), lambda r: f"{r.mode}, {r.fetched_tasks} fetched")
        time.sleep(2.5)  # past the sync watermark's margin
        changed = full.snapshot.annotations.sample(frac=0.01, random_state=0)
        for aid in changed["annotation_id"]:
            client.update_annotation(int(aid), schema.result(classes[0]))
        steps.run("1% changed sync", lambda: ws.sync(), lambda r: f"{r.mode}, {r.fetched_tasks} fetched")

        snapshot = ws.latest_snapshot()
        pool = pd.DataFrame({"task_id": snapshot.tasks["task_id"].to_numpy(), "text": snapshot.tasks["text"]})
        for version, seed, name in (("run-scale-1", 0, "push"), ("run-scale-2", 1, "push again")):
            probs = np.random.default_rng(seed).dirichlet(np.ones(len(classes)) * 0.2, size=len(pool))
            scored = score_pool(pool, probs, schema.kind, strategy="margin", n=20, model_version=version)
            steps.run(name, lambda scored=scored: push_pool(client, project.id, scored, schema),
                      lambda r: f"{r['pushed']} pushed, {r['old_predictions_removed']} old removed")
        if quality:
            steps.run("quality (cold)", lambda: ws.quality.assess(snapshot), lambda a: f"{len(a.issues)} rows")
            steps.run("quality (warm)", lambda: ws.quality.assess(snapshot), lambda a: f"{len(a.issues)} rows")
            steps.run("curate/export", lambda: ws.curation.prepare(snapshot),
                      lambda p: f"{len(p.split.df)} rows, export {p.export.path if p.export else None}")
        return [{"size": size, "database": database, **row} for row in steps.rows]
    finally:
        stop_server(state / "ls")


def growth(rows: list[dict], database: str, step: str, small: int, large: int) -> float | None:
    seconds = {r["size"]: r["seconds"] for r in rows if r["database"] == database and r["step"] == step}
    if small in seconds and large in seconds and seconds[small] > 0:
        return round(seconds[large] / seconds[small], 1)
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--out", help="write every figure to this JSON file")
    args = parser.parse_args()

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    rows: list[dict] = []
    for size in args.sizes:
        for database in args.databases:
            rows += one_run(size, database, quality=database == args.databases[0])

    print(f"\n{'step':<18}{'database':<12}" + "".join(f"{s:>10,}" for s in args.sizes) + "   10k->100k")
    steps = list(dict.fromkeys(r["step"] for r in rows))
    summary = []
    for step in steps:
        for database in args.databases:
            cells = {r["size"]: r["seconds"] for r in rows if r["step"] == step and r["database"] == database}
            if not cells:
                continue
            factor = growth(rows, database, step, 10_000, 100_000)
            summary.append({"step": step, "database": database, "growth_10k_100k": factor})
            print(f"{step:<18}{database:<12}" + "".join(f"{cells.get(s, float('nan')):>10.1f}" for s in args.sizes)
                  + (f"   {factor:>6.1f}x" if factor is not None else ""))
    verdicts = []
    for r in rows:
        if r["size"] == 100_000 and r["step"] in TARGETS_S:
            verdicts.append(f"{r['step']} on {r['database']}: {r['seconds']:.0f} s vs <= {TARGETS_S[r['step']]} s "
                            f"({'met' if r['seconds'] <= TARGETS_S[r['step']] else 'missed'})")
    verdicts += [f"{s['step']} on {s['database']}: growth {s['growth_10k_100k']}x (target <= {MAX_GROWTH}x, "
                 f"{'met' if s['growth_10k_100k'] <= MAX_GROWTH else 'missed'})"
                 for s in summary if s["growth_10k_100k"] is not None]
    peak = max((max(r["studio_peak_mb"], r["labelstudio_peak_mb"]) for r in rows), default=0)
    verdicts.append(f"peak RSS of one process group: {peak} MB (target <= {RSS_LIMIT_MB} MB, "
                    f"{'met' if peak <= RSS_LIMIT_MB else 'missed'})")
    print("\n" + "\n".join(verdicts))
    if args.out:
        Path(args.out).write_text(json.dumps({
            "started": started, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "data": "banking77 train.csv (10,003 texts, 77 intents), one annotation each; texts repeated with a "
                    "suffix past 10,003 tasks",
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "rows": rows, "growth": summary, "verdicts": verdicts}, indent=1) + "\n")
        print(f"written {args.out}")


if __name__ == "__main__":
    main()
