"""The task-kind contract: what every stage asks of the kind of labeling work, documented once here.

A stage never decides on its own how a task's labels look; it asks the project's `TaskKind` (chosen from the
labeling config by `studio.tasks.kind_for`). A stage a kind does not support calls `kind.require(stage)`,
which refuses with an `UnsupportedTaskKind` that says so: never a silent fallback.

The shared vocabulary:

- target: what one task is labeled with. single_label: a class name (str); multi_label: a list of class
  names; spans: a list of span dicts (studio/spans.py). The labeled view and every later table hold it in the
  column `kind.target_column`.
- classes of a row (`row_classes`): the class names a target contains (the one class, the chosen classes, the
  entity types of the spans). Splits stratify on them and rebalancing resamples on them, so one greedy
  stratified split and one set of samplers serve every kind.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd

from studio.errors import DataError, UnsupportedTaskKind
from studio.labeling import LabelingSchema

#: The stages of the loop a kind may support (`TaskKind.stages`).
STAGES = ("sync", "quality", "consensus", "review", "curate", "balance", "train", "predict", "push", "active",
          "mlbackend")

#: Stratification key of a row that contains no class (a multi-label task with no label chosen, a sentence
#: with no entities): such rows form their own stratum.
NO_CLASS = "<none>"

class UnknownLabels(DataError):
    """An import cell names classes the labeling config does not have (`labels`)."""

    def __init__(self, labels: Sequence[str]) -> None:
        super().__init__(f"labels not in the labeling config: {', '.join(labels)}")
        self.labels = list(labels)


#: One usable vote: (annotator, target).
Vote = tuple[str, Any]


class TaskKind:
    """One kind of labeling work. Subclasses set the class attributes and implement the target methods.

    name: the kind's key ("single_label", "multi_label", "spans"), stored in snapshot and data-version
      manifests. target_column: the labeled view's column holding each task's target. description: a few
      words for pages and messages. stages: the stages of STAGES this kind supports.
    """

    name: ClassVar[str] = ""
    target_column: ClassVar[str] = ""
    description: ClassVar[str] = ""
    stages: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, schema: LabelingSchema) -> None:
        self.schema = schema

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names (entity types for spans) in labeling-config order: index = class id downstream."""
        return self.schema.classes

    def __repr__(self) -> str:
        return f"{type(self).__name__}(classes={list(self.classes)[:5]}{'…' if len(self.classes) > 5 else ''})"

    # -- which stages -------------------------------------------------------------------------------------------
    def supports(self, stage: str) -> bool:
        return stage in self.stages

    def require(self, stage: str, *, what: str | None = None) -> None:
        """Raise UnsupportedTaskKind unless this kind supports `stage` (what: how the caller names it)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")  # a programming error
        if stage not in self.stages:
            able = ", ".join(sorted(self.stages)) or "none"
            raise UnsupportedTaskKind(
                f"{what or stage.capitalize()}: not available for {self.description} projects "
                f"(task kind '{self.name}'); for this kind the studio supports: {able}.",
                hint="use a project whose labeling config this stage handles, or skip this stage for this project")

    # -- annotation -> target (sync, snapshot) ----------------------------------------------------------------
    def target_of(self, labels: Sequence[str], result: list[dict[str, Any]], text: str) -> Any:
        """One annotation's target from its chosen labels (the `labels` column) and raw `result`; None when the
        annotation gives no usable target (listed by `annotation_problems`)."""
        raise NotImplementedError

    def annotation_problems(self, labels: Sequence[str], result: list[dict[str, Any]],
                            text: str) -> list[tuple[str, str]]:
        """(problem, detail) pairs for one submitted annotation; problem keys are listed in `problems`."""
        raise NotImplementedError

    #: problem key -> what it means, for the validation report (on top of studio.records.PROBLEMS).
    problems: ClassVar[dict[str, str]] = {}

    def combine(self, votes: Sequence[Vote]) -> tuple[Any, float]:
        """Several annotators' targets for one task (oldest first) -> (the task's target, agreement in [0, 1]).
        agreement: the share of annotators whose target equals the combined one."""
        raise NotImplementedError

    def disagree(self, votes: Sequence[Vote]) -> bool:
        """Whether the annotators of a task chose different targets (listed as `disagreement`)."""
        return len({self.key(t) for _, t in votes}) > 1

    def key(self, target: Any) -> Any:
        """A hashable form of a target, for comparing and hashing."""
        raise NotImplementedError

    def target_text(self, target: Any) -> str:
        """A target in a few words, for tables and messages ("card_arrival", "a, b", "Paris/location")."""
        raise NotImplementedError

    def decision_target(self, label: Any) -> Any:
        """The target a review decision's `label` sets ("relabel"); raises DataError if it is not one."""
        raise NotImplementedError

    # -- curation ----------------------------------------------------------------------------------------------
    def row_classes(self, targets: pd.Series) -> list[list[str]]:
        """The class names each target contains (see the module docstring), in config order."""
        raise NotImplementedError

    def stratification_keys(self, targets: pd.Series) -> np.ndarray:
        """(N,) object array: each row's rarest class (ties by name), NO_CLASS when it has none, so rare classes
        are spread over the splits first. Raises DataError on a row without a usable target."""
        lists = self.row_classes(targets)
        freq = Counter(c for row in lists for c in row)
        return np.array([min(row, key=lambda c: (freq[c], c)) if row else NO_CLASS for row in lists], dtype=object)

    def check_targets(self, frame: pd.DataFrame) -> None:
        """Raise DataError naming the column and rows when `frame` lacks usable targets."""
        col = self.target_column
        if col not in frame.columns:
            raise DataError(f"The data has no '{col}' column (columns: {list(frame.columns)}); a {self.description} "
                            f"data set holds its targets there.",
                            hint="build the data from the snapshot's labeled view (studio.prepare.curated_view)")

    def with_task_data(self, curated: pd.DataFrame, tasks: pd.DataFrame, *, group_field: str = "") -> pd.DataFrame:
        """The curated view plus the columns this kind exports from each task's data (tasks: the snapshot's task
        table, its `data` JSON). Classification and spans export only the text and the target."""
        return curated

    # -- export -------------------------------------------------------------------------------------------------
    def encode(self, frame: pd.DataFrame, names: list[str]) -> dict[str, pd.Series]:
        """Columns of the exported files besides task_id and text, from the targets (class names -> ids)."""
        raise NotImplementedError

    def export_features(self, names: list[str]) -> dict[str, Any]:
        """HF `datasets` features of the columns `encode` returns."""
        raise NotImplementedError

    def export_counts(self, encoded: pd.DataFrame, names: list[str]) -> dict[str, int]:
        """Per class, how many times it occurs in an encoded split (rows, labels or entities)."""
        raise NotImplementedError

    def manifest_extra(self, names: list[str]) -> dict[str, Any]:
        """Extra keys of a data version's manifest (e.g. the BIO tag names)."""
        return {}

    def card_columns(self) -> str:
        """The dataset card's sentence on the target columns."""
        raise NotImplementedError

    #: HF task category for the dataset card.
    hf_task_category: ClassVar[str] = "text-classification"
    #: Whether targets come from a label map (classes of the config); False for free-text answers.
    has_classes: ClassVar[bool] = True
    #: How many distinct classes the labeled data needs before a model can learn from it (a classifier two, a
    #: tagger one entity type, free-text answers none); curation warns below it.
    min_classes: ClassVar[int] = 1

    # -- import -------------------------------------------------------------------------------------------------
    def import_target(self, value: Any, text: str, *, row: int) -> Any:
        """An import file's label cell -> a target, or None when the cell is empty (the task arrives unlabeled).
        Raises UnknownLabels for classes not in the config and DataError (naming the row) for a malformed cell."""
        raise NotImplementedError

    # -- predict, active learning -----------------------------------------------------------------------------
    def predict(self, predictor: Any, texts: list[str], *, progress: Any = None) -> Any:
        """The model's raw output on texts: (N, K) class probabilities for classification (predict_proba), a
        list of (W, T) per-word tag probabilities for spans (predict_word_probs)."""
        return predictor.predict_proba(texts, progress=progress)

    def from_output(self, output: Any, texts: list[str]) -> tuple[list[Any], np.ndarray]:
        """Model output -> (the predicted target of each task, (N, K') probabilities the query strategies rank).

        Single-label: the class probabilities themselves. Kinds with several decisions per task reduce each task
        to its least certain decision as a two-way distribution [(1 + m) / 2, (1 - m) / 2], m its margin, so
        margin, least-confidence and entropy all rank by that margin and Label Studio gets it as the score."""
        raise NotImplementedError

    # -- push -----------------------------------------------------------------------------------------------------
    def result(self, target: Any) -> list[dict[str, Any]]:
        """A Label Studio annotation / prediction `result` for a target."""
        raise NotImplementedError


def margin_rows(margins: np.ndarray) -> np.ndarray:
    """(N,) margins in [0, 1] -> (N, 2) rows [(1 + m) / 2, (1 - m) / 2] (see TaskKind.from_output)."""
    m = np.clip(np.asarray(margins, dtype=float), 0.0, 1.0)
    return np.stack([(1 + m) / 2, (1 - m) / 2], axis=1)


def usable_votes(kind: TaskKind, tasks: pd.DataFrame, annotations: pd.DataFrame) -> dict[int, list[Vote]]:
    """task_id -> [(annotator, target)] of the submitted annotations that give a usable target, oldest first
    (so the most recent comes last)."""
    text = tasks.set_index("task_id")["text"]
    votes: dict[int, list[Vote]] = {}
    ordered = annotations.sort_values(["updated_at", "annotation_id"])
    for a in ordered.itertuples(index=False):
        if a.was_cancelled or a.task_id not in text.index:
            continue
        target = kind.target_of(list(a.labels), _result(a.result), text[a.task_id])
        if target is not None:
            votes.setdefault(int(a.task_id), []).append((a.annotator, target))
    return votes


def _result(raw: Any) -> list[dict[str, Any]]:
    import json

    if isinstance(raw, str):
        return json.loads(raw) if raw else []
    return list(raw or [])
