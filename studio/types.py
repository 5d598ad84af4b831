"""Shared type aliases (one place, so signatures read the same everywhere)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import numpy.typing as npt

#: progress(done, total): called as long work advances; `total` may be 0 when unknown.
ProgressFn = Callable[[int, int], None]

#: (N, K) array of predicted class probabilities, rows sum to 1.
PredProbs = npt.NDArray[np.floating]

#: (N, D) float32 array of L2-normalised text embeddings.
Embeddings = npt.NDArray[np.float32]
