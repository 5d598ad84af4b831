"""The contract every quality check follows, and the registry the UI and CLI list.

A check reads a `QualityContext` (texts, labels, out-of-sample pred_probs, embeddings, the shared kNN graph)
and returns rows of the long issue table, one row per (task, issue type) it has something to say about:

    task_index       int    row in the inputs (0..N-1)
    task_id          object the Label Studio task id (or the index when none was given)
    issue_type       str    the check's name
    score            float  in [0, 1]; lower = more likely a problem
    is_issue         bool   the check's verdict
    given_label      str    the task's current label (class name)
    suggested_label  str    a better label when the check has one, else ""
    confidence       float  the model's out-of-sample probability of suggested_label (NaN when there is none)
    group_id         int    duplicate group (-1 = none)
    details          str    one human-readable line

Adding a check = one module with a `Check` subclass decorated with `@register_check`, imported in
`studio/checks/__init__.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from studio.checks.neighbours import KnnGraph
from studio.errors import ConfigError, did_you_mean
from studio.types import Embeddings, PredProbs

ISSUE_COLUMNS: list[str] = ["task_index", "task_id", "issue_type", "score", "is_issue", "given_label",
                            "suggested_label", "confidence", "group_id", "details"]


@dataclass
class QualityContext:
    """Inputs shared by all checks. pred_probs: (N, K) out-of-sample; embeddings: (N, D) L2-normalised;
    knn: neighbour graph of the embeddings; options: the QualityConfig as a dict (each check reads its keys).
    label_issue_count: after a refit round, how many label issues confident learning estimated: an int (the
    check flags that many lowest scores) or (K,) per given class (that many lowest in each class); None = the
    label-issue check runs confident learning itself. embeddings: None when the texts were not embedded (long
    documents: knn is then the TF-IDF neighbour graph, studio/sparse_model.text_vectors)."""

    texts: Sequence[str]
    labels: npt.NDArray[np.int64]
    class_names: list[str]
    task_ids: np.ndarray
    pred_probs: PredProbs
    embeddings: Embeddings | None
    knn: KnnGraph
    options: dict[str, Any]
    label_issue_count: int | np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.labels)


class Check(ABC):
    """One kind of issue. Subclasses set `name` and `description` and implement `run`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    @abstractmethod
    def run(self, ctx: QualityContext) -> pd.DataFrame:
        """Return rows with exactly ISSUE_COLUMNS (use `issue_rows`); lower score = more likely a problem."""


CHECKS: dict[str, type[Check]] = {}


def register_check(cls: type[Check]) -> type[Check]:
    """Class decorator: make a check selectable by its `name`."""
    if not cls.name:
        raise ConfigError(f"check class {cls.__name__} has an empty name.", hint="set `name = '...'` on it")
    CHECKS[cls.name] = cls
    return cls


def available_checks() -> dict[str, str]:
    """name -> description of every registered check, in registration order (for the UI and CLI)."""
    return {name: cls.description for name, cls in CHECKS.items()}


def get_check(name: str) -> Check:
    """Instantiate a registered check by name; unknown names raise ConfigError with the known ones."""
    if name not in CHECKS:
        raise ConfigError(f"quality check {name!r} does not exist.{did_you_mean(name, CHECKS)}",
                          hint=f"choose from: {', '.join(CHECKS)}")
    return CHECKS[name]()


def issue_rows(ctx: QualityContext, issue_type: str, rows: npt.ArrayLike, score: npt.ArrayLike,
               is_issue: npt.ArrayLike, *, suggested: npt.ArrayLike | None = None,
               confidence: npt.ArrayLike | None = None, group_id: npt.ArrayLike | None = None,
               details: Sequence[str] | str = "") -> pd.DataFrame:
    """Build a DataFrame with ISSUE_COLUMNS for the given task rows (all arrays aligned with `rows`)."""
    idx = np.asarray(rows, dtype=np.int64)
    names = np.asarray(ctx.class_names, dtype=object)
    if suggested is None:
        suggested_names = np.full(len(idx), "", dtype=object)
    else:
        sug = np.asarray(suggested, dtype=np.int64)
        suggested_names = np.where(sug >= 0, names[np.clip(sug, 0, None)], "")
    return pd.DataFrame({
        "task_index": idx,
        "task_id": ctx.task_ids[idx] if len(idx) else np.asarray([], dtype=object),
        "issue_type": issue_type,
        "score": np.clip(np.asarray(score, dtype=float), 0.0, 1.0),
        "is_issue": np.asarray(is_issue, dtype=bool),
        "given_label": names[ctx.labels[idx]] if len(idx) else np.asarray([], dtype=object),
        "suggested_label": suggested_names,
        "confidence": np.full(len(idx), np.nan) if confidence is None else np.asarray(confidence, dtype=float),
        "group_id": np.full(len(idx), -1, dtype=np.int64) if group_id is None else np.asarray(group_id, np.int64),
        "details": details if isinstance(details, str) else list(details),
    }, columns=ISSUE_COLUMNS)


def empty_issues() -> pd.DataFrame:
    """The issue table with no rows but the stable columns and dtypes."""
    return pd.DataFrame({
        "task_index": pd.Series(dtype="int64"), "task_id": pd.Series(dtype=object),
        "issue_type": pd.Series(dtype=object), "score": pd.Series(dtype=float),
        "is_issue": pd.Series(dtype=bool), "given_label": pd.Series(dtype=object),
        "suggested_label": pd.Series(dtype=object), "confidence": pd.Series(dtype=float),
        "group_id": pd.Series(dtype="int64"),
        "details": pd.Series(dtype=object),
    })
