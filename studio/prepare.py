"""Snapshot + review decisions -> curated view -> split -> rebalance -> exported data version.

The glue between the review and train stages: each step is a core function; this module only chains them,
so the Curate page, the Train button and `studio curate` produce the same data version for the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from studio.balance import BalanceResult, rebalance
from studio.curate import CurateConfig, SplitResult, split_dataset
from studio.errors import EmptyDataError
from studio.export import ExportInfo, export_curated
from studio.review import apply_decisions
from studio.snapshot import Snapshot

DEMO_LICENSE = "CC BY 4.0 (BANKING77, Casanueva et al. 2020) for the demo data; otherwise the project's own"


@dataclass
class Prepared:
    curated: pd.DataFrame
    split: SplitResult
    balance: BalanceResult
    export: ExportInfo | None
    #: set by the curation stage: tasks per (old split -> new split), "new" for tasks no version had yet
    #: (studio.split_ledger.moves); and what to say when the settings differ from the ledger's.
    split_moves: pd.DataFrame | None = None
    split_note: str | None = None


def curated_view(snapshot: Snapshot, decisions: pd.DataFrame) -> pd.DataFrame:
    """The labeled view of a snapshot with a person's decisions applied (excluded tasks removed)."""
    return apply_decisions(snapshot.labeled(), decisions, kind=snapshot.schema.kind)


def decision_counts(curated: pd.DataFrame, decisions: pd.DataFrame) -> dict[str, int]:
    from studio.review import effective_decisions

    current = effective_decisions(decisions)
    return {str(k): int(v) for k, v in current["action"].value_counts().items()} if not current.empty else {}


def prepare(snapshot: Snapshot, decisions: pd.DataFrame, *, cfg: CurateConfig,
            embed: Callable[[list[str]], np.ndarray] | None = None, out_root: str | Path | None = None,
            source_license: str = DEMO_LICENSE, near_duplicate_threshold: float | None = None,
            keep: Mapping[Any, str] | None = None) -> Prepared:
    """Curate a snapshot. embed(texts) -> (N, D) embeddings of the curated texts, used to keep near-duplicates
    in one split (None: only exact task ids are kept together); near_duplicate_threshold: the similarity that
    makes two texts near-duplicates (None: [curate]'s); keep: task id -> split of tasks assigned in earlier
    versions (the split ledger's; they keep it). With out_root, the result is exported as a
    content-addressed data version."""
    kind = snapshot.schema.kind
    kind.require("curate", what="Curation")
    curated = curated_view(snapshot, decisions)
    if curated.empty:
        raise EmptyDataError(f"Snapshot {snapshot.id} has no usable labels (after review decisions).",
                             hint="label some tasks in Label Studio, sync, and try again")
    curated = kind.with_task_data(curated, snapshot.tasks, group_field=cfg.group_field)
    groups = None
    if embed is not None:
        from studio.checks import near_duplicate_groups

        texts = curated["text"].tolist()
        threshold = near_duplicate_threshold or cfg.near_duplicate_threshold
        groups = near_duplicate_groups(texts, embed(texts), threshold=threshold)
    split = split_dataset(curated, kind=kind, ratios=cfg.ratios, seed=cfg.seed, groups=groups, keep=keep)
    if kind.min_classes:
        present = sorted({c for classes in kind.row_classes(curated[kind.target_column]) for c in classes})
        if len(present) < kind.min_classes:
            split.warnings.insert(0, f"Only {len(present)} class(es) ({', '.join(present) or 'none'}) have labels in "
                                     f"this data: a model needs {kind.min_classes} to learn from it (training refuses "
                                     f"it). Label examples of at least {kind.min_classes} classes.")
    classes = list(snapshot.schema.classes)
    balanced = rebalance(split.df, kind=kind, method=cfg.sampler, seed=cfg.seed, class_names=classes)
    export = None
    if out_root is not None:
        export = export_curated(balanced.df, kind=kind, class_names=classes,
                                out_root=out_root, snapshot_id=snapshot.id,
                                decisions_applied=decision_counts(curated, decisions),
                                source_license=source_license, class_weights=balanced.class_weights,
                                sampler=cfg.sampler)
    return Prepared(curated, split, balanced, export)
