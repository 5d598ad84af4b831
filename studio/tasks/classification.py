"""Text classification kinds: one class per task (`<Choices>`) or a set of classes (`<Choices choice="multiple">`)."""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd

from studio.errors import DataError
from studio.tasks.base import STAGES, TaskKind, UnknownLabels, Vote, margin_rows


class _Classification(TaskKind):
    min_classes: ClassVar[int] = 2  # a classifier needs two classes to tell apart
    problems: ClassVar[dict[str, str]] = {
        "unknown_label": "an annotation chose a label that is not in the labeling config",
        "no_label": "an annotation (not cancelled) chose no label for the classification tag",
    }

    def annotation_problems(self, labels: Sequence[str], result: list[dict[str, Any]],
                            text: str) -> list[tuple[str, str]]:
        unknown = [label for label in labels if label not in self.classes]
        if unknown:
            return [("unknown_label", f"chose {unknown}, not in the config's classes")]
        if not labels:
            return [("no_label", f"submitted no '{self.schema.from_name}' choice")]
        return []

    def _usable(self, labels: Sequence[str]) -> bool:
        return len(labels) > 0 and all(label in self.classes for label in labels)

    def result(self, target: Any) -> list[dict[str, Any]]:
        return self.schema.result(target)

    def _cell_labels(self, value: Any) -> list[str]:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return []
        if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
            labels = [str(v) for v in list(value)]
        else:
            labels = [part.strip() for part in str(value).split(",") if part.strip()]
        unknown = [label for label in labels if label not in self.classes]
        if unknown and self.classes:
            raise UnknownLabels(unknown)
        return labels

    def _class(self, label: Any) -> str:
        if label not in self.classes:
            raise DataError(f"{label!r} is not a class of the labeling config.",
                            hint=f"pick one of: {', '.join(self.classes[:20])}")
        return str(label)


class SingleLabel(_Classification):
    """One class per task. Target: the class name."""

    name = "single_label"
    target_column = "label"
    description = "single-label classification"
    stages = frozenset(STAGES)

    def target_of(self, labels: Sequence[str], result: list[dict[str, Any]], text: str) -> str | None:
        return str(labels[0]) if self._usable(labels) else None

    def combine(self, votes: Sequence[Vote]) -> tuple[str, float]:
        """The majority class; a tie goes to the class chosen most recently (the freshest judgement)."""
        firsts = [target for _, target in votes]
        counts = Counter(firsts)
        best = max(counts.values())
        tied = {label for label, n in counts.items() if n == best}
        return next(label for label in reversed(firsts) if label in tied), best / len(votes)

    def key(self, target: Any) -> Any:
        return str(target)

    def decision_target(self, label: Any) -> str:
        return self._class(label)

    def from_output(self, output: Any, texts: list[str]) -> tuple[list[Any], np.ndarray]:
        probs = np.asarray(output, dtype=float)
        return [self.classes[i] for i in probs.argmax(axis=1)], probs

    def import_target(self, value: Any, text: str, *, row: int) -> str | None:
        labels = self._cell_labels(value)
        if len(labels) > 1:
            raise DataError(f"row {row} has {len(labels)} labels {labels} for a single-label project")
        return labels[0] if labels else None

    def target_text(self, target: Any) -> str:
        return str(target)

    def row_classes(self, targets: pd.Series) -> list[list[str]]:
        return [[str(t)] for t in targets]

    def check_targets(self, frame: pd.DataFrame) -> None:
        super().check_targets(frame)
        labels = frame[self.target_column]
        bad = labels.isna() | (labels.astype(str).str.strip() == "")
        if bad.any():
            ids = frame.loc[bad, "task_id"].head(5).tolist() if "task_id" in frame else []
            raise DataError(f"{int(bad.sum())} rows have no label (task ids {ids}...).",
                            hint="exclude unlabeled tasks before splitting")

    def encode(self, frame: pd.DataFrame, names: list[str]) -> dict[str, pd.Series]:
        index = {c: i for i, c in enumerate(names)}
        as_str = frame["label"].astype(str)
        unknown = sorted(set(as_str) - set(index))
        if unknown:
            raise DataError(f"Labels {unknown[:5]} are not in class_names {names[:10]}.",
                            hint="fix class_names (from the labeling config) or relabel those tasks")
        return {"label": as_str.map(index).astype("int64")}

    def export_features(self, names: list[str]) -> dict[str, Any]:
        from datasets import ClassLabel

        return {"label": ClassLabel(names=names)}

    def export_counts(self, encoded: pd.DataFrame, names: list[str]) -> dict[str, int]:
        totals = np.bincount(encoded["label"].to_numpy(dtype=np.int64), minlength=len(names))
        return {name: int(n) for name, n in zip(names, totals)}

    def card_columns(self) -> str:
        return "`label` (index into the label map above)"


class MultiLabel(_Classification):
    """Any set of classes per task. Target: the list of chosen class names, in config order."""

    name = "multi_label"
    target_column = "labels"
    description = "multi-label classification"
    # Quality (cleanlab's multi-label issues) and consensus are classification-only today.
    stages = frozenset(STAGES) - {"quality", "consensus"}

    def target_of(self, labels: Sequence[str], result: list[dict[str, Any]], text: str) -> list[str] | None:
        return [str(label) for label in labels] if self._usable(labels) else None

    def combine(self, votes: Sequence[Vote]) -> tuple[list[str], float]:
        """Each class chosen by at least half of the annotators."""
        counts = Counter(label for _, labels in votes for label in set(labels))
        chosen = sorted((lab for lab, n in counts.items() if n * 2 >= len(votes)), key=self.classes.index)
        return chosen, sum(set(v) == set(chosen) for _, v in votes) / len(votes)

    def key(self, target: Any) -> Any:
        return tuple(sorted(str(t) for t in target))

    def from_output(self, output: Any, texts: list[str]) -> tuple[list[Any], np.ndarray]:
        """Classes with probability >= 0.5; a task's margin is that of its least certain class, |2p - 1|."""
        probs = np.asarray(output, dtype=float)
        targets = [[c for c, p in zip(self.classes, row) if p >= 0.5] for row in probs]
        margins = np.abs(2 * probs - 1).min(axis=1) if probs.size else np.zeros(len(probs))
        return targets, margin_rows(margins)

    def import_target(self, value: Any, text: str, *, row: int) -> list[str] | None:
        """Classes separated by ',' or a list."""
        labels = self._cell_labels(value)
        return [c for c in self.classes if c in labels] or (labels if not self.classes else None)

    def decision_target(self, label: Any) -> list[str]:
        """A relabel's classes, comma-separated ("a, b") or a list; "" = none of the classes."""
        parts = label if isinstance(label, (list, tuple)) else [p.strip() for p in str(label or "").split(",")]
        chosen = {self._class(p) for p in parts if p}
        return [c for c in self.classes if c in chosen]

    def target_text(self, target: Any) -> str:
        return ", ".join(str(t) for t in target)

    def row_classes(self, targets: pd.Series) -> list[list[str]]:
        return [[str(x) for x in v] if isinstance(v, (list, tuple, np.ndarray)) else [] for v in targets]

    def encode(self, frame: pd.DataFrame, names: list[str]) -> dict[str, pd.Series]:
        index = {c: i for i, c in enumerate(names)}

        def vec(labs: list[str]) -> list[float]:
            unknown = [x for x in labs if x not in index]
            if unknown:
                raise DataError(f"Labels {unknown} are not in class_names {names[:10]}.",
                                hint="fix class_names (from the labeling config) or the labels")
            row = [0.0] * len(names)
            for x in labs:
                row[index[x]] = 1.0
            return row

        return {"labels": pd.Series([vec(labs) for labs in self.row_classes(frame["labels"])], index=frame.index,
                                    dtype=object)}

    def export_features(self, names: list[str]) -> dict[str, Any]:
        from datasets import List, Value

        return {"labels": List(Value("float32"), length=len(names))}

    def export_counts(self, encoded: pd.DataFrame, names: list[str]) -> dict[str, int]:
        totals = np.sum(np.array(encoded["labels"].tolist(), dtype=float).reshape(-1, len(names)), axis=0)
        return {name: int(n) for name, n in zip(names, totals)}

    def card_columns(self) -> str:
        return "`labels` (one 0/1 float per class, in label-index order)"
