"""Class imbalance: classes with far fewer examples than an even share (N / K)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio.checks.base import Check, QualityContext, issue_rows, register_check


def rare_classes(labels: np.ndarray, n_classes: int, *, ratio: float,
                 min_count: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(counts (K,), is_rare (K,) bool, expected count). Rare = below ratio * N/K or below min_count."""
    counts = np.bincount(labels, minlength=n_classes)
    expected = len(labels) / max(n_classes, 1)
    return counts, (counts < ratio * expected) | (counts < min_count), expected


@register_check
class ClassImbalance(Check):
    name = "class_imbalance"
    description = "Task belongs to a rare class (count below a fraction of the even share N/K, or below a minimum)."

    def run(self, ctx: QualityContext) -> pd.DataFrame:
        counts, rare, expected = rare_classes(ctx.labels, len(ctx.class_names),
                                              ratio=float(ctx.options.get("rare_class_ratio", 0.25)),
                                              min_count=int(ctx.options.get("min_class_count", 10)))
        rows = np.flatnonzero(rare[ctx.labels])
        cls = ctx.labels[rows]
        score = counts[cls] / max(expected, 1e-12)
        details = [f"class has {counts[c]} examples, an even share would be {expected:.0f}" for c in cls]
        return issue_rows(ctx, self.name, rows, score, np.ones(len(rows), bool), details=details)
