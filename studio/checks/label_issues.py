"""Label issues: tasks whose given label the out-of-sample model finds unlikely (cleanlab confident learning)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio.checks.base import Check, QualityContext, issue_rows, register_check


def label_quality_scores(labels: np.ndarray, pred_probs: np.ndarray, *, method: str) -> np.ndarray:
    """(N,) scores in [0, 1], lower = more likely mislabeled (cleanlab.rank, functional API: no KNN, no pool)."""
    from cleanlab.rank import get_label_quality_scores

    return get_label_quality_scores(labels, pred_probs, method=method)


def find_label_issues(labels: np.ndarray, pred_probs: np.ndarray, *, filter_by: str) -> np.ndarray:
    """(N,) bool, True = flagged. n_jobs=1: cleanlab's process pool costs more than it saves on 2 cores.
    cleanlab's "may not flag all label issues in class: <index>" (a class with one example) is silenced: the report's
    warnings already list the classes with fewer examples than folds (studio.probabilities.make_folds)."""
    import warnings

    from cleanlab.filter import find_label_issues as _find

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="May not flag all label issues in class")
        return np.asarray(_find(labels, pred_probs, filter_by=filter_by, n_jobs=1), dtype=bool)


def flag_label_issues(labels: np.ndarray, pred_probs: np.ndarray, scores: np.ndarray, *, filter_by: str,
                      count: np.ndarray | int | None = None) -> np.ndarray:
    """(N,) bool. count=None: cleanlab estimates which labels are wrong from pred_probs (filter_by).
    count=(K,) per given class (after a refit round, see QualityConfig.refit_rounds): in each class, that many
    of its lowest scores, the counts being confident learning's per-class estimate of how many of the class's
    labels are wrong. Flags are calibrated per class, so a class whose examples the model is merely unsure of
    does not take flags that belong to others. An int = that many lowest scores over all classes."""
    if count is None:
        return find_label_issues(labels, pred_probs, filter_by=filter_by)
    flagged = np.zeros(len(labels), dtype=bool)
    if np.ndim(count) == 0:
        flagged[np.argsort(scores, kind="stable")[:int(count)]] = True
        return flagged
    for k, n_k in enumerate(np.asarray(count, dtype=np.int64)):
        rows = np.flatnonzero(labels == k)
        if n_k > 0 and len(rows):
            flagged[rows[np.argsort(scores[rows], kind="stable")[:n_k]]] = True
    return flagged


@register_check
class LabelIssues(Check):
    name = "label_issue"
    description = ("Given label disagrees with an out-of-sample model (cleanlab confident learning); "
                   "suggests the model's label.")

    def run(self, ctx: QualityContext) -> pd.DataFrame:
        probs, labels = ctx.pred_probs, ctx.labels
        score = label_quality_scores(labels, probs, method=ctx.options.get("score_method", "normalized_margin"))
        flagged = flag_label_issues(labels, probs, score, count=ctx.label_issue_count,
                                    filter_by=ctx.options.get("filter_by", "prune_by_noise_rate"))
        predicted = probs.argmax(axis=1)
        suggested = np.where(predicted != labels, predicted, -1)
        rows = np.arange(ctx.n)
        p_given = probs[rows, labels]
        p_pred = probs[rows, predicted]
        names = ctx.class_names
        details = [
            f"model: {pg:.2f} for the given label, {pp:.2f} for '{names[k]}'" if s >= 0 else f"model agrees ({pg:.2f})"
            for pg, pp, k, s in zip(p_given, p_pred, predicted, suggested)
        ]
        confidence = np.where(suggested >= 0, p_pred, np.nan)
        return issue_rows(ctx, self.name, rows, score, flagged, suggested=suggested, confidence=confidence,
                          details=details)
