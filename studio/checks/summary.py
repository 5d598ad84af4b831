"""Per-class views of the quality result: out-of-sample confusion and a per-class summary table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio.checks.imbalance import rare_classes


def confusion_frame(labels: np.ndarray, pred_probs: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """(K, K) counts: rows = given label, columns = out-of-sample predicted label (argmax of pred_probs)."""
    k = len(class_names)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (labels, pred_probs.argmax(axis=1)), 1)
    return pd.DataFrame(matrix, index=pd.Index(class_names, name="given"),
                        columns=pd.Index(class_names, name="predicted"))


def per_class_summary(labels: np.ndarray, pred_probs: np.ndarray, class_names: list[str], *,
                      label_quality: np.ndarray, is_label_issue: np.ndarray, rare_class_ratio: float = 0.25,
                      min_class_count: int = 10) -> pd.DataFrame:
    """One row per class: count, share (of all labels), expected_count, is_rare, label_issues, issue_rate,
    flag_share (of all flagged labels: far above `share` = the class takes more than its part of the flags),
    mean_label_quality, most_confused_with (the class it is most often mixed up with, either direction) and
    confused_count. Sorted worst first (highest issue rate)."""
    k = len(class_names)
    counts, rare, expected = rare_classes(labels, k, ratio=rare_class_ratio, min_count=min_class_count)
    issues = np.bincount(labels, weights=is_label_issue.astype(float), minlength=k)
    quality_sum = np.bincount(labels, weights=label_quality, minlength=k)
    conf = confusion_frame(labels, pred_probs, class_names).to_numpy()
    mixed = conf + conf.T
    np.fill_diagonal(mixed, -1)
    partner = mixed.argmax(axis=1)
    partner_count = mixed[np.arange(k), partner]
    with np.errstate(invalid="ignore", divide="ignore"):
        frame = pd.DataFrame({
            "class": class_names,
            "count": counts,
            "share": counts / max(int(counts.sum()), 1),
            "expected_count": expected,
            "is_rare": rare,
            "label_issues": issues.astype(np.int64),
            "issue_rate": np.where(counts > 0, issues / counts, np.nan),
            "flag_share": issues / max(float(issues.sum()), 1.0),
            "mean_label_quality": np.where(counts > 0, quality_sum / counts, np.nan),
            "most_confused_with": [class_names[j] if c > 0 else "" for j, c in zip(partner, partner_count)],
            "confused_count": np.clip(partner_count, 0, None),
        })
    return frame.sort_values(["issue_rate", "count"], ascending=[False, True], na_position="last",
                             kind="stable").reset_index(drop=True)
