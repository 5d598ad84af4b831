"""Numerically stable softmax and sigmoid (numpy only, no torch): logits in, probabilities out, same shape."""

from __future__ import annotations

import numpy as np


def softmax(z: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """Softmax of logits z along `axis` (default: the last, i.e. rows of an (N, K) array); each slice sums to 1.

    The maximum is subtracted first, so large logits never overflow. The result has z's float dtype.
    """
    z = np.asarray(z)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Element-wise logistic sigmoid 1 / (1 + exp(-z)), in (0, 1); any shape in, same shape out.

    exp is only taken of non-positive numbers, so no logit overflows (or warns), however large its magnitude.
    """
    z = np.asarray(z)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
