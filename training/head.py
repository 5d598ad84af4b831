"""The fast head: logistic regression on frozen, mean-pooled, L2-normalised embeddings (seconds on CPU).

It is both a baseline recorded in every run and the starting point of the fine-tuned model's linear head.
numpy in, numpy out; no torch here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from studio.mathops import sigmoid, softmax

#: logit given to a class with no training example, so softmax never picks it (and stays finite).
_ABSENT_CLASS_LOGIT = -50.0


@dataclass
class LinearHead:
    """weight (K, D), bias (K,): logits = X @ weight.T + bias."""

    weight: np.ndarray
    bias: np.ndarray
    multi_label: bool

    def logits(self, X: np.ndarray) -> np.ndarray:
        return X.astype(np.float64) @ self.weight.T.astype(np.float64) + self.bias

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(N, D) embeddings -> (N, K) probabilities: softmax rows (single-label) or sigmoids (multi-label)."""
        z = self.logits(X)
        return sigmoid(z) if self.multi_label else softmax(z)


def fit_linear_head(X: np.ndarray, y: np.ndarray, *, num_classes: int, multi_label: bool = False,
                    C: float = 10.0, class_weights: list[float] | None = None, seed: int = 0,
                    max_iter: int = 1000) -> LinearHead:
    """Fit logistic regression and return it as a (K, D) linear head.

    X: (N, D) float embeddings. y: (N,) int class indices in [0, K) or, multi-label, (N, K) 0/1 matrix.
    Classes absent from y get a very low logit (single-label) or their base rate (multi-label), so the
    head always has exactly K rows in class_names order.
    """
    X = np.asarray(X, dtype=np.float64)
    d = X.shape[1]
    weight = np.zeros((num_classes, d))
    bias = np.full(num_classes, _ABSENT_CLASS_LOGIT)
    with warnings.catch_warnings():
        # A few lbfgs iterations short of convergence changes nothing that matters for an initialisation.
        warnings.simplefilter("ignore", ConvergenceWarning)
        if multi_label:
            Y = np.asarray(y, dtype=np.float64)
            for k in range(num_classes):
                col = (Y[:, k] > 0.5).astype(int)
                if col.min() == col.max():  # constant column: nothing to separate, predict the base rate
                    rate = np.clip(col.mean(), 1e-4, 1 - 1e-4)
                    bias[k] = np.log(rate / (1 - rate))
                    continue
                cw = None if class_weights is None else {0: 1.0, 1: float(class_weights[k])}
                lr = LogisticRegression(C=C, max_iter=max_iter, class_weight=cw, random_state=seed).fit(X, col)
                weight[k], bias[k] = lr.coef_[0], lr.intercept_[0]
            return LinearHead(weight, bias, True)
        y = np.asarray(y, dtype=np.int64)
        cw = None if class_weights is None else {k: float(w) for k, w in enumerate(class_weights)}
        lr = LogisticRegression(C=C, max_iter=max_iter, class_weight=cw, random_state=seed).fit(X, y)
    classes = lr.classes_.astype(int)
    if len(classes) == 2:
        # sklearn keeps one row for binary problems: softmax([0, z]) == sigmoid(z) reproduces it exactly.
        weight[classes[0]], bias[classes[0]] = 0.0, 0.0
        weight[classes[1]], bias[classes[1]] = lr.coef_[0], lr.intercept_[0]
    else:
        weight[classes], bias[classes] = lr.coef_, lr.intercept_
    return LinearHead(weight, bias, False)
