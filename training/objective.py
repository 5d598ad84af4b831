"""The training side of a classification task kind: what "one label" or "several labels" means for a model.

studio/tasks/ decides what a task's target is (a class name, a list of class names); this module decides
what the model does with it. Each objective answers, once, the questions the fast head, the classifier,
the metrics and the predictor used to ask a `multi_label` flag:

- how a curated split's target column becomes an array (`targets`), and what a valid one looks like;
- how logits become probabilities (`probs` for numpy, `torch_probs` for torch) and the loss (`loss`);
- how probabilities become a decision (`decide`) and the confusion matrix of decisions;
- how the fast head's logistic regression is fitted (`fit_head`).

`objective_for(task)` picks one by the task kind's name. Spans and generation have their own trainers
(training/tokens.py, training/sft.py) and no objective here; asking for one is refused.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix

from studio.errors import DataError, TrainingError
from studio.mathops import sigmoid, softmax

#: logit given to a class with no training example, so softmax never picks it (and stays finite).
ABSENT_CLASS_LOGIT = -50.0


class Objective:
    """One classification objective. Subclasses set the class attributes and implement the methods."""

    task: ClassVar[str]
    #: the curated frames' target column (studio/tasks' export writes it).
    target_column: ClassVar[str]
    #: how the model card and messages name it.
    title: ClassVar[str]
    #: what one target cell holds, for error messages.
    cell: ClassVar[str]

    def targets(self, frame: pd.DataFrame, num_classes: int) -> np.ndarray:
        raise NotImplementedError

    def check_targets(self, y: np.ndarray, num_classes: int, split: str) -> None:
        """Raise DataError naming the split when y does not index into num_classes classes."""
        raise NotImplementedError

    def classes_present(self, y: np.ndarray) -> int:
        raise NotImplementedError

    def probs(self, logits: np.ndarray) -> np.ndarray:
        """(N, K) logits -> (N, K) float64 probabilities."""
        raise NotImplementedError

    def torch_probs(self, logits: Any) -> Any:
        raise NotImplementedError

    def loss(self, logits: Any, labels: Any, weight: Any | None) -> Any:
        """The training loss of a batch: logits (B, K), labels as `targets` gives them, weight (K,) or None."""
        raise NotImplementedError

    def truth(self, y: np.ndarray) -> np.ndarray:
        """Targets in the form `decide` returns (for sklearn's metrics)."""
        raise NotImplementedError

    def decide(self, probs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def confusion(self, truth: np.ndarray, pred: np.ndarray, num_classes: int) -> list:
        raise NotImplementedError

    def fit_head(self, X: np.ndarray, y: np.ndarray, *, num_classes: int, C: float,
                 class_weights: list[float] | None, seed: int, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
        """Logistic regression on (N, D) embeddings -> weight (K, D), bias (K,) in class_names order."""
        raise NotImplementedError


class SingleLabel(Objective):
    """One class per task: class indices, softmax, cross-entropy, argmax."""

    task = "single_label"
    target_column = "label"
    title = "single-label"
    cell = "an integer class index"

    def targets(self, frame: pd.DataFrame, num_classes: int) -> np.ndarray:
        return frame["label"].to_numpy(dtype=np.int64) if len(frame) else np.zeros(0, dtype=np.int64)

    def check_targets(self, y: np.ndarray, num_classes: int, split: str) -> None:
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            bad = int(y.max() if y.max() >= num_classes else y.min())
            raise DataError(f"The {split} split has label {bad}, expected an index in [0, {num_classes - 1}].",
                            hint="labels index into class_names")

    def classes_present(self, y: np.ndarray) -> int:
        return len(np.unique(y))

    def probs(self, logits: np.ndarray) -> np.ndarray:
        return softmax(np.asarray(logits, dtype=np.float64), axis=1)

    def torch_probs(self, logits: Any) -> Any:
        import torch

        return torch.softmax(logits, dim=-1)

    def loss(self, logits: Any, labels: Any, weight: Any | None) -> Any:
        from torch import nn

        return nn.functional.cross_entropy(logits, labels.long(), weight=weight)

    def truth(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.int64)

    def decide(self, probs: np.ndarray) -> np.ndarray:
        return np.asarray(probs).argmax(axis=1)

    def confusion(self, truth: np.ndarray, pred: np.ndarray, num_classes: int) -> list:
        """(K, K) counts, rows = truth."""
        return confusion_matrix(truth, pred, labels=list(range(num_classes))).tolist()

    def fit_head(self, X: np.ndarray, y: np.ndarray, *, num_classes: int, C: float,
                 class_weights: list[float] | None, seed: int, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
        weight = np.zeros((num_classes, X.shape[1]))
        bias = np.full(num_classes, ABSENT_CLASS_LOGIT)
        cw = None if class_weights is None else {k: float(w) for k, w in enumerate(class_weights)}
        with warnings.catch_warnings():
            # A few lbfgs iterations short of convergence changes nothing that matters for an initialisation.
            warnings.simplefilter("ignore", ConvergenceWarning)
            lr = LogisticRegression(C=C, max_iter=max_iter, class_weight=cw, random_state=seed)
            lr.fit(X, np.asarray(y, dtype=np.int64))
        classes = lr.classes_.astype(int)
        if len(classes) == 2:
            # sklearn keeps one row for binary problems: softmax([0, z]) == sigmoid(z) reproduces it exactly.
            weight[classes[0]], bias[classes[0]] = 0.0, 0.0
            weight[classes[1]], bias[classes[1]] = lr.coef_[0], lr.intercept_[0]
        else:
            weight[classes], bias[classes] = lr.coef_, lr.intercept_
        return weight, bias


class MultiLabel(Objective):
    """Any number of classes per task: (N, K) 0/1 rows, one sigmoid per class, binary cross-entropy, and a
    class is predicted when its probability reaches THRESHOLD."""

    task = "multi_label"
    target_column = "labels"
    title = "multi-label"
    cell = "a list of K 0/1 numbers"
    #: decision threshold on each class's sigmoid probability.
    THRESHOLD: ClassVar[float] = 0.5

    def targets(self, frame: pd.DataFrame, num_classes: int) -> np.ndarray:
        if len(frame) == 0:
            return np.zeros((0, num_classes), dtype=np.float32)
        return np.asarray([list(v) for v in frame["labels"]], dtype=np.float32)

    def check_targets(self, y: np.ndarray, num_classes: int, split: str) -> None:
        if y.ndim != 2 or y.shape[1] != num_classes:
            raise DataError(f"The {split} split's 'labels' rows have length {y.shape[1:]}, expected {num_classes}.",
                            hint="each 'labels' value must be a 0/1 list with one entry per class")

    def classes_present(self, y: np.ndarray) -> int:
        return int((y.sum(axis=0) > 0).sum())

    def probs(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(np.asarray(logits, dtype=np.float64))

    def torch_probs(self, logits: Any) -> Any:
        import torch

        return torch.sigmoid(logits)

    def loss(self, logits: Any, labels: Any, weight: Any | None) -> Any:
        from torch import nn

        return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), weight=weight)

    def truth(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y) > 0.5).astype(int)

    def decide(self, probs: np.ndarray) -> np.ndarray:
        return (np.asarray(probs) >= self.THRESHOLD).astype(int)

    def confusion(self, truth: np.ndarray, pred: np.ndarray, num_classes: int) -> list:
        """One 2x2 matrix per class: [[tn, fp], [fn, tp]]."""
        return [[[int(((truth[:, i] == a) & (pred[:, i] == b)).sum()) for b in (0, 1)] for a in (0, 1)]
                for i in range(num_classes)]

    def fit_head(self, X: np.ndarray, y: np.ndarray, *, num_classes: int, C: float,
                 class_weights: list[float] | None, seed: int, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
        """One binary logistic regression per class; a class no task (or every task) has gets its base rate."""
        weight = np.zeros((num_classes, X.shape[1]))
        bias = np.zeros(num_classes)
        Y = np.asarray(y, dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for k in range(num_classes):
                col = (Y[:, k] > 0.5).astype(int)
                if col.min() == col.max():  # constant column: nothing to separate, predict the base rate
                    rate = np.clip(col.mean(), 1e-4, 1 - 1e-4)
                    bias[k] = np.log(rate / (1 - rate))
                    continue
                cw = None if class_weights is None else {0: 1.0, 1: float(class_weights[k])}
                lr = LogisticRegression(C=C, max_iter=max_iter, class_weight=cw, random_state=seed).fit(X, col)
                weight[k], bias[k] = lr.coef_[0], lr.intercept_[0]
        return weight, bias


OBJECTIVES: dict[str, Objective] = {o.task: o for o in (SingleLabel(), MultiLabel())}


def objective_for(task: str) -> Objective:
    """The objective of a classification task kind ("single_label", "multi_label")."""
    if task not in OBJECTIVES:
        raise TrainingError(f"The {task!r} task kind has no classification objective: it trains with its own "
                            "trainer (spans: training/tokens.py, generation: training/sft.py).",
                            hint="call the trainer for that kind (training.jobs.train picks it from the data)")
    return OBJECTIVES[task]


def task_of(saved: dict[str, Any]) -> str:
    """The task kind a run's labels.json (or a curated manifest) names; files written before the task kinds
    existed say only whether it was multi-label."""
    return str(saved.get("task") or ("multi_label" if saved.get("multi_label") else "single_label"))
