"""Active learning: score the unlabeled pool with the current model and hand Label Studio the strategy's order.

`score_pool` is the core (pred_probs in, a ranked DataFrame out). `push_pool` puts every pool prediction into Label
Studio in bulk (model_version = the run id or fast-<snapshot>), sets the project to that model version with
"Uncertainty sampling", deletes predictions of the studio's own older versions, runs and fast learner alike, and
keeps a "Most uncertain" Data Manager tab of the unlabeled tasks in the same order.

What Label Studio does with a prediction (label_studio 1.23, read in its source and measured against the server):
- Order. Uncertainty sampling (projects/functions/next_task.py, `_try_uncertainty_sampling`) serves, among the
  unlabeled tasks that have a prediction of the project's model_version, the lowest prediction `score` first
  (`order_by('predictions__score')`; only with two or more project members, which the Community edition never
  adds, it serves at random instead: `_get_random_unlocked` re-orders by '?').
  The Data Manager's `tasks:predictions_score` is the average score of the task's predictions of that version
  (data_manager/managers.py), ascending. So the pushed `score` is the task's place in the strategy's queue,
  rank / N (0 = served first): whatever the strategy, Label Studio serves `ScoredPool.rank` order (tested for
  diverse_margin: the first n tasks served are the strategy's batch, in order). Margins would have served margin
  order whatever the strategy.
- What the editor shows (measured in a browser): each prediction is a tab beside the annotator's own, with the
  AI icon, the model_version and "· <100 x score>%" (title "Prediction score = ..."): that percentage is now the
  queue position, not a confidence. Label Studio has no second number for a prediction: its import takes task,
  result, score and model_version only. The model's probability (`top1`) therefore goes on the result items'
  own `score`: the Regions list shows it per span (two decimals); for <Choices> the editor shows it nowhere, it
  is in the API and the export.
- Pre-annotation. The annotator's draft starts from the prediction's result. A prediction with an empty result
  is accepted, still orders the task, and pre-selects nothing (measured: no choice checked). So a task whose top1
  is below `threshold` ([active] preannotate_threshold) gets an order-only prediction; at or above it, the
  model's answer is pre-selected in the annotator's draft, and the prediction's tab beside it (AI icon,
  model_version) is what marks it as the model's suggestion: the editor has no other marker for one.
- A second push of the same model_version (another strategy on the same snapshot) first deletes that version's
  predictions (Label Studio would order by the lowest of both); until the import finishes, served tasks are
  random.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from studio.active import confidence_score, get_strategy
from studio.errors import ConfigError, EmptyDataError
from studio.fast_models import FAST_PREFIX  # fast-<snapshot id>: the fast learners' predictions
from studio.labeling import LabelingSchema
from studio.learner import PREANNOTATE_THRESHOLD
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


def queue_rows(scored: ScoredPool, *, threshold: float) -> pd.DataFrame:
    """The rows push_pool sends (studio.push.prediction_records' columns), one per pool task in rank order:
    task_id, target, score = rank / N (Label Studio's ordering value: ascending = the strategy's order, 0 = first),
    result_score = top1 (the model's probability of its answer, the confidence annotators can read), preselect =
    top1 >= threshold (False: the prediction orders the task but pre-selects no answer)."""
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"preannotate_threshold = {threshold!r} is invalid: expected a probability in [0, 1].",
                          hint="set [active] preannotate_threshold, e.g. 0.8; 0 pre-selects every answer")
    if scored.model_version is None or "target" not in scored.pool:
        raise EmptyDataError("A cold-start ranking has no predictions to push.",
                             hint="train a model first; until then, the 'Next batch' tab shows the diverse picks")
    pool = scored.pool.sort_values("rank", ignore_index=True)
    top1 = pool["top1"].to_numpy(dtype=float)
    return pd.DataFrame({"task_id": pool["task_id"], "target": pool["target"],
                         "score": pool["rank"].to_numpy(dtype=float) / max(len(pool), 1),
                         "result_score": top1, "preselect": top1 >= threshold})


def push_pool(client: LabelStudioClient, project_id: int, scored: ScoredPool, schema: LabelingSchema, *,
              threshold: float = PREANNOTATE_THRESHOLD, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Push every pool prediction of `scored` (needs a model_version) in the strategy's order and set Label Studio's
    sampling. threshold: the top1 below which a task gets no pre-selected answer (see queue_rows).
    Returns pushed, old_predictions_removed, preselected (tasks with an answer), order_only, threshold."""
    rows = queue_rows(scored, threshold=threshold)
    version = scored.model_version
    removed = 0
    if version in client.model_versions(project_id):  # the same model again (another strategy): no mixed scores
        removed += client.delete_model_version(project_id, version)
    pushed = push_predictions(client, project_id, rows, schema, model_version=version, progress=progress)
    client.update_project(project_id, model_version=version, sampling=UNCERTAINTY_SAMPLING,
                          show_collab_predictions=True)
    for old in client.model_versions(project_id):
        if old.startswith((RUN_PREFIX, FAST_PREFIX)) and old != version:
            removed += client.delete_model_version(project_id, old)
    client.upsert_view(project_id, UNCERTAIN_TAB, filters=queue_filters(version),
                       ordering=["tasks:predictions_score"])
    preselected = int(rows["preselect"].sum())
    return {"pushed": pushed, "old_predictions_removed": removed, "preselected": preselected,
            "order_only": len(rows) - preselected, "threshold": float(threshold)}


def queue_filters(model_version: str) -> dict[str, Any]:
    """The "Most uncertain" tab: tasks with a prediction of this version and no annotation yet (a task leaves the
    tab once labeled; a skipped task stays, as Label Studio counts skips apart)."""
    return dm_filters(dm_item("tasks:predictions_model_versions", "contains", "List", [model_version]),
                      dm_item("tasks:total_annotations", "equal", "Number", 0))


def push_summary(result: dict[str, Any], *, strategy: str, model_version: str) -> str:
    """One paragraph on what a push_pool result means for annotators (the Active learning page and `studio active`
    print it). "confidence" is the model's probability, "score" Label Studio's ordering value."""
    return (f"Pushed {result['pushed']:,} predictions of {model_version} in the {strategy} order: Label Studio serves "
            f"the lowest score first, and each task's score is its place in that queue (rank / number of tasks; its "
            f"editor shows it as the percentage beside the model version). {result['preselected']:,} tasks open with "
            f"the model's answer pre-selected as its suggestion (top-1 probability ≥ {result['threshold']:.2f}; the "
            f"probability is written on the answer); {result['order_only']:,} are order-only, nothing pre-selected "
            f"(the model is less sure than that). Removed {result['old_predictions_removed']:,} predictions of older "
            f"versions. The '{UNCERTAIN_TAB}' tab lists the unlabeled tasks in the same order.")
