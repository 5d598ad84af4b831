"""Active learning: score the unlabeled pool with the current model and hand Label Studio the order.

`score_pool` is the core (pred_probs in, a ranked DataFrame out). `push_pool` puts every pool prediction
into Label Studio in bulk with model_version = the run id and score = confidence (lower = less certain),
sets the project to that model version with "Uncertainty sampling" (so Label Studio serves the least certain
task next), deletes predictions of the studio's own older versions, runs and fast learner alike (Label Studio
orders by every prediction's score of a task, so old versions would mix in), and keeps a "Most uncertain"
Data Manager tab.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from studio.active import confidence_score, get_strategy
from studio.errors import EmptyDataError
from studio.fast_models import FAST_PREFIX  # fast-<snapshot id>: the fast learners' predictions
from studio.labeling import LabelingSchema
from studio.labelstudio.client import LabelStudioClient, dm_filters, dm_item
from studio.push import push_predictions
from studio.tasks import TaskKind
from studio.types import Embeddings, ProgressFn

RUN_PREFIX = "run-"
UNCERTAIN_TAB = "Most uncertain"
UNCERTAINTY_SAMPLING = "Uncertainty sampling"


@dataclass
class ScoredPool:
    """pool: task_id, text, target (the predicted target, of the task kind), label (it in a few words), top1 (the
    probability of the task's least certain decision), confidence (its top-1 minus top-2 probability: lower =
    less certain; see TaskKind.from_output), uncertainty (strategy score, higher = more worth labeling), rank
    (0 = ask first; the batch order of the strategy, then the rest)."""

    pool: pd.DataFrame
    strategy: str
    model_version: str | None
    batch: pd.DataFrame  # the first `n` rows by rank


def score_pool(pool: pd.DataFrame, output: Any, kind: TaskKind, *, strategy: str,
               n: int, embeddings: Embeddings | None = None, model_version: str | None = None,
               seed: int = 0) -> ScoredPool:
    """Rank unlabeled tasks. pool: task_id, text (N rows); output: the model's output on the pool's texts
    (TaskKind.predict: (N, K) class probabilities, or per-word tag probabilities for spans), or None for a cold
    start (then `strategy` must work without a model, e.g. "cold_start")."""
    if pool.empty:
        raise EmptyDataError("There are no unlabeled tasks left to score.",
                             hint="import more tasks with `studio import FILE`")
    chooser = get_strategy(strategy)
    out = pool[["task_id", "text"]].reset_index(drop=True).copy()
    pred_probs = None
    if output is not None:
        targets, pred_probs = kind.from_output(output, out["text"].tolist())
        probs = np.asarray(pred_probs)
        out["target"] = pd.Series(targets, dtype=object)
        out["label"] = [kind.target_text(t) for t in targets]
        out["top1"] = probs.max(1)
        out["confidence"] = confidence_score(probs)
        out["uncertainty"] = chooser.scores(probs) if chooser.needs_model else 1.0 - out["confidence"]
    picked = chooser.select(pred_probs, n=min(n, len(out)), embeddings=embeddings, seed=seed)
    rank = np.full(len(out), len(out), dtype=np.int64)
    rank[picked] = np.arange(len(picked))
    if pred_probs is not None:  # the rest by uncertainty, most uncertain first
        rest = np.setdiff1d(np.arange(len(out)), picked)
        order = rest[np.argsort(-out.loc[rest, "uncertainty"].to_numpy(), kind="stable")]
        rank[order] = np.arange(len(picked), len(out))
    out["rank"] = rank
    out = out.sort_values("rank", ignore_index=True)
    return ScoredPool(out, strategy, model_version, out.head(len(picked)))


def push_pool(client: LabelStudioClient, project_id: int, scored: ScoredPool, schema: LabelingSchema, *,
              progress: ProgressFn | None = None) -> dict[str, int]:
    """Push every pool prediction of `scored` (needs a model_version) and set Label Studio's sampling."""
    if scored.model_version is None or "target" not in scored.pool:
        raise EmptyDataError("A cold-start ranking has no predictions to push.",
                             hint="train a model first; until then, the 'Next batch' tab shows the diverse picks")
    rows = scored.pool.rename(columns={"confidence": "score"})[["task_id", "target", "score"]]
    pushed = push_predictions(client, project_id, rows, schema, model_version=scored.model_version,
                              progress=progress)
    client.update_project(project_id, model_version=scored.model_version, sampling=UNCERTAINTY_SAMPLING,
                          show_collab_predictions=True)
    removed = 0
    for version in client.model_versions(project_id):
        if version.startswith((RUN_PREFIX, FAST_PREFIX)) and version != scored.model_version:
            removed += client.delete_model_version(project_id, version)
    filters = dm_filters(dm_item("tasks:predictions_model_versions", "contains", "List", [scored.model_version]))
    client.upsert_view(project_id, UNCERTAIN_TAB, filters=filters, ordering=["tasks:predictions_score"])
    return {"pushed": pushed, "old_predictions_removed": removed}
