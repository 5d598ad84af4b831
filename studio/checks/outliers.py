"""Outliers: texts far from all others in embedding space (off-topic, garbled, another language)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio.checks.base import Check, QualityContext, issue_rows, register_check


def outlier_scores(similarities: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
    """From (N, >=k) neighbour cosine similarities: (scores in [0, 1], lower = more unusual; mean distances).

    Same transform as cleanlab.outlier.OutOfDistribution (exp(-d / median d)), but on the shared graph so no
    second neighbour search is run.
    """
    k = max(1, min(k, similarities.shape[1]))
    dist = np.clip(1.0 - similarities[:, :k].astype(float), 0.0, None).mean(axis=1)
    scale = max(float(np.median(dist)), 1e-12)
    return np.exp(-dist / scale), dist


@register_check
class Outliers(Check):
    name = "outlier"
    description = "Text unlike the rest of the data set (mean cosine distance to its nearest neighbours)."

    def run(self, ctx: QualityContext) -> pd.DataFrame:
        if ctx.knn.k == 0:
            return issue_rows(ctx, self.name, [], [], [])
        score, dist = outlier_scores(ctx.knn.similarities, k=int(ctx.options.get("outlier_k", 10)))
        q1, q3 = np.percentile(dist, [25, 75])
        # A robust fence (Tukey) instead of a fixed fraction: a clean data set gets no flags at all.
        cut = q3 + float(ctx.options.get("outlier_iqr_factor", 3.0)) * (q3 - q1)
        flagged = dist > cut
        details = [f"mean distance to neighbours {d:.3f} (fence {cut:.3f})" for d in dist]
        return issue_rows(ctx, self.name, np.arange(ctx.n), score, flagged, details=details)
