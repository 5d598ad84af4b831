"""Curate: a stratified, group-aware train/validation/test split of the reviewed tasks.

Input is the curated view the glue builds from a snapshot plus review decisions: one row per task with
`task_id`, `text` and the task kind's target column (`label`, `labels` or `spans`; studio/tasks/).
Output is the same rows with a `split` column. No I/O here; writing a data version is `studio.export`.
Rebalancing (train split only) is `studio.balance`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from studio.config import ConfigSection, require
from studio.errors import DataError, EmptyDataError
from studio.tasks import TaskKind

SPLITS: tuple[str, str, str] = ("train", "validation", "test")

#: A class with fewer rows than this is not split: all its rows go to train (with a warning), because one
#: example in validation or test measures nothing and would cost the model its only training example.
MIN_CLASS_SIZE = 3



@dataclass
class CurateConfig(ConfigSection):
    """How the curated data set is split and rebalanced.

    ratios: train/validation/test fractions; each >= 0, train > 0, summing to 1.
    sampler: a key of `studio.balance.REBALANCERS` ("none", "random_over", "random_under", "class_weight").
    near_duplicate_threshold: cosine similarity above which two texts count as near-duplicates and are kept
    in the same split (the glue turns it into `groups`); for instruction -> response data, the prompts.
    group_field: instruction -> response data: which task data key is exported as each row's `group`.
    """

    SECTION = "curate"
    ratios: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    seed: int = 0
    sampler: str = "none"
    near_duplicate_threshold: float = 0.98  # at 0.95 MiniLM chains paraphrases into large groups
    # Instruction -> response data: the task data key whose value is a row's group (exported as `group`, so a run
    # is evaluated per group); "" = none.
    group_field: str = "intent"

    def __post_init__(self) -> None:
        from studio.balance import check_method  # balance imports nothing from here at module level

        try:
            self.ratios = [float(r) for r in self.ratios]
        except (TypeError, ValueError):
            require(False, self.SECTION, "ratios", self.ratios, "three numbers, e.g. [0.8, 0.1, 0.1]")
        check_ratios(self.ratios, section=self.SECTION)
        require(isinstance(self.seed, int) and self.seed >= 0, self.SECTION, "seed", self.seed,
                "a non-negative integer")
        check_method(self.sampler, field_name=f"[{self.SECTION}] sampler")
        require(0.0 < self.near_duplicate_threshold <= 1.0, self.SECTION, "near_duplicate_threshold",
                self.near_duplicate_threshold, "a cosine similarity in (0, 1], e.g. 0.95")


def check_ratios(ratios: Sequence[float], *, section: str = "curate") -> tuple[float, float, float]:
    """Validate (train, validation, test) fractions; raise ConfigError naming the value otherwise."""
    ok_shape = len(ratios) == 3
    require(ok_shape, section, "ratios", list(ratios), "three fractions (train, validation, test)")
    r = tuple(float(x) for x in ratios)
    require(all(np.isfinite(x) and x >= 0 for x in r), section, "ratios", list(ratios), "fractions >= 0")
    require(r[0] > 0, section, "ratios", list(ratios), "a train fraction above 0")
    require(abs(sum(r) - 1.0) <= 1e-6, section, "ratios", list(ratios),
            f"fractions summing to 1 (they sum to {sum(r):.4g})")
    return r  # type: ignore[return-value]


@dataclass
class SplitResult:
    """The split and what to tell the user about it.

    df: the input rows (same order, same index) plus a `split` column in {"train", "validation", "test"}.
    warnings: human-readable notes (tiny classes kept in train, classes missing from a split).
    counts: one row per class, columns train/validation/test/total; for multi-label a row counts once per
    label it carries.
    kept / assigned: tasks whose split came from `keep`, and tasks placed now.
    """

    df: pd.DataFrame
    warnings: list[str]
    counts: pd.DataFrame
    #: tasks that kept the split `keep` gave them, and tasks assigned now.
    kept: int = 0
    assigned: int = 0


def split_dataset(df: pd.DataFrame, *, kind: TaskKind, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0,
                  groups: np.ndarray | None = None, keep: Mapping[Any, str] | None = None) -> SplitResult:
    """Split tasks into train/validation/test, stratified by class, keeping groups together.

    df: N rows with `task_id` and the kind's target column; other columns pass through.
    kind: the project's task kind; rows are stratified on the classes their targets contain (kind.row_classes).
    ratios: (train, validation, test) fractions, summing to 1.
    seed: the same data, ratios, groups and seed always give the same split.
    groups: optional (N,) ids (e.g. near-duplicate groups); rows sharing an id land in the same split.
      Rows sharing a `task_id` are always kept together too, so no task is in two splits.
    keep: task_id -> split of tasks assigned before (studio/split_ledger.py). They stay where they are; only
      the other tasks are assigned, towards the ratios over all rows (so the stratification holds as far as
      the new tasks allow), and a new task grouped with kept ones joins them. None: every task is assigned.

    Method: a greedy stratified group assignment. Each row gets a stratification key: the rarest class its
    target contains (its label; for multi-label its rarest label; for spans its rarest entity type), so rare
    classes are spread first; rows without any class (no entities) get "<none>".
    Groups are visited rarest key first (largest group first within a key; among equals, in the order of a
    seeded hash of the group's smallest task id, so a task's place in the order does not depend on which other
    tasks came in) and each goes to the split whose quota of that key (ratio x class size) is least filled;
    ties go to the split furthest below its overall quota, then by a seeded order. Splits with ratio 0 get
    nothing. Kept tasks count towards the quotas before any new task is placed.

    Tiny classes: a key with fewer than MIN_CLASS_SIZE (3) rows goes entirely to train, with a warning
    (unless a group ties a row to larger classes: the group then goes where those classes need it).
    A class large enough to split but too small for every split to get a share (e.g. 5 rows at 10%) may
    miss from validation or test; that is warned too.
    """
    r = check_ratios(ratios, section="curate")
    keys = _stratification_keys(df, kind)
    task_ids = df["task_id"].to_numpy()
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (len(df),):
            raise DataError(
                f"groups has shape {groups.shape}, expected ({len(df)},): one group id per row.",
                hint="pass the near-duplicate group ids computed on exactly these rows, or None",
            )
    comp = _components(task_ids, groups)
    kept = _kept_splits(task_ids, keep)
    assignment, warnings = _assign(keys, comp, r, seed, kept=kept, task_ids=task_ids)
    out = df.copy()
    out["split"] = pd.Categorical(np.array(SPLITS, dtype=object)[assignment], categories=list(SPLITS))
    out["split"] = out["split"].astype(str)
    counts = split_counts(out, kind=kind)
    for cls, row in counts.iterrows():
        if row["total"] < MIN_CLASS_SIZE:
            continue
        missing = [s for s, ratio in zip(SPLITS, r) if ratio > 0 and row[s] == 0]
        if missing:
            warnings.append(f"Class '{cls}' ({int(row['total'])} examples) has none in "
                            f"{' or '.join(missing)}: "
                            "its score there cannot be measured; label more examples of it.")
    n_kept = int(pd.Series(task_ids[kept >= 0]).nunique())
    return SplitResult(df=out, warnings=warnings, counts=counts, kept=n_kept,
                       assigned=int(pd.Series(task_ids).nunique()) - n_kept)


def split_counts(split_df: pd.DataFrame, *, kind: TaskKind) -> pd.DataFrame:
    """Count rows per class and split. split_df: rows with `split` and the kind's target column.

    Returns a DataFrame indexed by class name with columns train, validation, test, total (ints); classes
    sorted by total, largest first. A row counts once for each class its target contains (kind.row_classes).
    """
    if "split" not in split_df.columns:
        raise DataError("The data has no 'split' column.", hint="run split_dataset() first")
    kind.check_targets(split_df)
    exploded = pd.DataFrame({"split": split_df["split"].to_numpy(),
                             "cls": kind.row_classes(split_df[kind.target_column])}).explode("cls").dropna()
    table = pd.crosstab(exploded["cls"].astype(str), exploded["split"])
    table = table.reindex(columns=list(SPLITS), fill_value=0)
    table["total"] = table.sum(axis=1)
    table.index.name = "class"
    table.columns.name = None
    return table.sort_values(["total"], ascending=False, kind="stable").astype(int)


def _stratification_keys(df: pd.DataFrame, kind: TaskKind) -> np.ndarray:
    """(N,) object array of class keys; validates the input columns."""
    if len(df) == 0:
        raise EmptyDataError("There are no tasks to split.",
                             hint="label some tasks, or include excluded ones")
    if "task_id" not in df.columns:
        raise DataError(f"The data has no 'task_id' column (columns: {list(df.columns)}).",
                        hint="build the curated view with one row per task and its task_id")
    kind.check_targets(df)
    return kind.stratification_keys(df[kind.target_column])


def _components(task_ids: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """(N,) component ids: rows linked by a shared task_id or a shared group id end up in one component."""
    n = len(task_ids)
    _, t = np.unique(task_ids.astype(str), return_inverse=True)
    cols = [t]
    if groups is not None:
        _, g = np.unique(groups.astype(str), return_inverse=True)
        cols.append(g + t.max() + 1)
    # Bipartite graph rows <-> (task ids, group ids); its connected components are the units of assignment.
    node_cols = np.concatenate(cols)
    rows = np.tile(np.arange(n), len(cols))
    m = int(node_cols.max()) + 1
    graph = coo_matrix((np.ones(len(rows)), (rows, n + node_cols)), shape=(n + m, n + m))
    _, labels = connected_components(graph, directed=False)
    return labels[:n]


def _kept_splits(task_ids: np.ndarray, keep: Mapping[Any, str] | None) -> np.ndarray:
    """(N,) split index of each row's kept split, -1 for a task assigned now."""
    kept = np.full(len(task_ids), -1, dtype=np.int64)
    if not keep:
        return kept
    index = {name: i for i, name in enumerate(SPLITS)}
    by_id = {str(t): s for t, s in keep.items()}
    for row, task in enumerate(task_ids):
        split = by_id.get(str(task))
        if split is not None:
            if split not in index:
                raise DataError(f"Task {task} is recorded in split {split!r}, expected one of {', '.join(SPLITS)}.",
                                hint="the split ledger (splits.json) was edited by hand: re-split to rebuild it")
            kept[row] = index[split]
    return kept


def _hash_order(task_ids: np.ndarray, seed: int) -> np.ndarray:
    """(N,) uint64 seeded hash of each task id: the same task always gets the same value for the same seed."""
    import hashlib

    return np.array([int.from_bytes(hashlib.blake2b(f"{seed}:{t}".encode(), digest_size=8).digest(), "big")
                     for t in task_ids.astype(str)], dtype=np.uint64)


def _assign(keys: np.ndarray, comp: np.ndarray, ratios: tuple[float, float, float],
            seed: int, *, kept: np.ndarray, task_ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Greedy stratified group assignment; returns ((N,) split index 0/1/2, warnings). kept: (N,) kept split
    index or -1 (see split_dataset)."""
    warnings: list[str] = []
    classes, key_idx = np.unique(keys.astype(str), return_inverse=True)
    class_size = np.bincount(key_idx, minlength=len(classes))
    tiny = class_size < MIN_CLASS_SIZE
    for k in np.flatnonzero(tiny):
        warnings.append(f"Class '{classes[k]}' has only {class_size[k]} example(s) (fewer than "
                        f"{MIN_CLASS_SIZE}): all of them are kept in train and it cannot be evaluated; "
                        "label more examples of it.")
    ratio = np.asarray(ratios, dtype=float)
    active = ratio > 0
    quota = ratio[:, None] * class_size[None, :]  # (3, K) rows of each key each split should get
    total_quota = ratio * len(keys)
    filled = np.zeros_like(quota)
    total_filled = np.zeros(3)

    comp_ids, comp_idx = np.unique(comp, return_inverse=True)
    n_comp = len(comp_ids)
    members = np.argsort(comp_idx, kind="stable")
    bounds = np.searchsorted(comp_idx[members], np.arange(n_comp + 1))
    row_hash = _hash_order(task_ids, seed)
    tie = np.array([row_hash[members[bounds[c]:bounds[c + 1]]].min() for c in range(n_comp)], dtype=np.uint64)
    sizes = np.diff(bounds)
    rarest = np.array([class_size[key_idx[members[bounds[c]:bounds[c + 1]]]].min() for c in range(n_comp)])
    order = np.lexsort((tie, -sizes, rarest))

    assignment = np.where(kept >= 0, kept, 0)
    for i in np.flatnonzero(kept >= 0):
        filled[kept[i], key_idx[i]] += 1
        total_filled[kept[i]] += 1
    split_rank = np.random.default_rng(seed).permutation(3)  # seeded preference among exactly tied splits
    straddling = 0
    for c in order:
        rows = members[bounds[c]:bounds[c + 1]]
        new = rows[kept[rows] < 0]
        if len(new) == 0:
            straddling += len(np.unique(kept[rows])) > 1
            continue
        k_counts = np.bincount(key_idx[new], minlength=len(classes))
        if len(new) < len(rows):
            # A new task grouped with kept ones joins them (the split most of them are in).
            held = np.bincount(kept[rows[kept[rows] >= 0]], minlength=3)
            straddling += int((held > 0).sum()) > 1
            best = int(held.argmax())
        elif tiny[k_counts > 0].all():
            best = 0  # only tiny classes inside: train, as documented
        else:
            used = k_counts > 0
            desire = ((quota - filled)[:, used] * k_counts[used]).sum(axis=1)
            overall = total_quota - total_filled
            cand = np.flatnonzero(active)
            best = int(cand[np.lexsort((split_rank[cand], -overall[cand], -desire[cand]))[0]])
        assignment[new] = best
        filled[best] += k_counts
        total_filled[best] += len(new)
    if straddling:
        warnings.append(f"{straddling} group(s) of near-duplicates span two splits: their tasks were assigned "
                        "in earlier versions, before they became near-duplicates, and keep their splits. "
                        "Re-split to bring each group into one split (it moves tasks between splits).")
    return assignment, warnings
