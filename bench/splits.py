"""Stable splits across data versions: what the split ledger keeps, against splitting every version afresh.

Simulates a project being labeled in rounds on a real data set: the first version has `--start` labeled tasks, the
next one 4 more (the case reported in issue 16: a fresh split kept 7 of 61 test tasks), then `--rounds` more
versions of `--step` new labels each. Each version is split twice with the product's `split_dataset`, ratios
0.8/0.1/0.1: once afresh (the old behaviour) and once keeping the splits the earlier versions gave (the ledger).

Prints per version and policy: test tasks of the previous version still in test (and validation likewise), test
tasks that moved into train (yesterday's test items training today's model), the test share, and the stratification
error: the largest gap, over classes with at least 10 tasks, between a class's test share and 10%.

    .venv/bin/python bench/splits.py                        # banking77 (first 13 intents' worth of rows)
    .venv/bin/python bench/splits.py --data convabuse --start 300 --step 150
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from studio.curate import split_dataset
from studio.tasks import kind_named

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load(name: str, n: int, seed: int) -> pd.DataFrame:
    """n labeled rows in a random labeling order: task_id, text, label."""
    if name == "banking77":
        frame = pd.read_csv(DATA / "banking77" / "train.csv")
        frame = frame.rename(columns={"category": "label"})[["text", "label"]]
    elif name == "convabuse":  # one row per conversation item, the majority label of its annotators
        items = pd.read_csv(DATA / "convabuse" / "convabuse_items.csv")
        text = next(c for c in ("user", "text", "prev_user") if c in items.columns)
        label = "majority_is_abusive"
        frame = items.rename(columns={text: "text", label: "label"})[["text", "label"]]
    else:
        raise SystemExit(f"--data {name}: use banking77 or convabuse")
    frame = frame.dropna().sample(frac=1.0, random_state=seed).head(n).reset_index(drop=True)
    frame.insert(0, "task_id", np.arange(1, len(frame) + 1))
    frame["label"] = frame["label"].astype(str)
    return frame


def strat_error(split_df: pd.DataFrame, share: float = 0.1, min_size: int = 10) -> float:
    counts = pd.crosstab(split_df["label"], split_df["split"])
    counts = counts[counts.sum(axis=1) >= min_size]
    test = counts.get("test", pd.Series(0, index=counts.index))
    return float((test / counts.sum(axis=1) - share).abs().max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="banking77")
    ap.add_argument("--start", type=int, default=600)
    ap.add_argument("--step", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    sizes = [args.start, args.start + 4, *[args.start + 4 + args.step * (i + 1) for i in range(args.rounds)]]
    data = load(args.data, sizes[-1], args.seed)
    kind = kind_named("single_label", sorted(data["label"].unique()))
    rows, previous, ledger = [], {}, {}
    started = time.perf_counter()
    for n in sizes:
        version = data.head(n)
        for policy in ("fresh", "ledger"):
            res = split_dataset(version, kind=kind, seed=args.seed, keep=ledger if policy == "ledger" else None)
            now = dict(zip(res.df["task_id"], res.df["split"]))
            before = previous.get(policy)
            row = {"tasks": n, "policy": policy, "test": sum(s == "test" for s in now.values()),
                   "strat_error": round(strat_error(res.df), 4)}
            if before:
                for split in ("test", "validation"):
                    old = [t for t, s in before.items() if s == split]
                    row[f"{split}_kept"] = f"{sum(now[t] == split for t in old)}/{len(old)}"
                row["test_to_train"] = sum(now[t] == "train" for t, s in before.items() if s == "test")
            rows.append(row)
            previous[policy] = now
            if policy == "ledger":
                ledger = now
    table = pd.DataFrame(rows)
    print(f"data {args.data}: {sizes[-1]} labeled rows, {data['label'].nunique()} classes; "
          f"versions of {sizes}; {time.perf_counter() - started:.1f} s")
    print(table.to_string(index=False))
    if args.out:
        Path(args.out).write_text(json.dumps({"data": args.data, "sizes": sizes, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
