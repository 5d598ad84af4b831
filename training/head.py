"""The fast head: logistic regression on frozen, mean-pooled, L2-normalised embeddings (seconds on CPU).

It is both a baseline recorded in every run and the starting point of the fine-tuned model's linear head.
numpy in, numpy out; no torch here. What "logistic regression" means for the task kind (one softmax over
the classes, or one sigmoid per class) is the objective's (training/objective.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.objective import Objective, SingleLabel


@dataclass
class LinearHead:
    """weight (K, D), bias (K,): logits = X @ weight.T + bias."""

    weight: np.ndarray
    bias: np.ndarray
    objective: Objective

    def logits(self, X: np.ndarray) -> np.ndarray:
        return X.astype(np.float64) @ self.weight.T.astype(np.float64) + self.bias

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(N, D) embeddings -> (N, K) probabilities (the objective's: softmax rows or sigmoids)."""
        return self.objective.probs(self.logits(X))


def fit_linear_head(X: np.ndarray, y: np.ndarray, *, num_classes: int, objective: Objective | None = None,
                    C: float = 10.0, class_weights: list[float] | None = None, seed: int = 0,
                    max_iter: int = 1000) -> LinearHead:
    """Fit logistic regression and return it as a (K, D) linear head.

    X: (N, D) float embeddings. y: the objective's targets ((N,) class indices for single-label, (N, K) 0/1
    for multi-label; single-label when no objective is given). Classes absent from y get a very low logit
    (single-label) or their base rate (multi-label), so the head always has exactly K rows in class_names order.
    """
    objective = objective or SingleLabel()
    weight, bias = objective.fit_head(np.asarray(X, dtype=np.float64), y, num_classes=num_classes, C=C,
                                      class_weights=class_weights, seed=seed, max_iter=max_iter)
    return LinearHead(weight, bias, objective)
