"""The fast learner: logistic regression on frozen embeddings, self-trained on the unlabeled pool.

Active learning needs a fresh model after every batch of labels, in seconds rather than a fine-tuning run.
This one fits a multinomial logistic regression on the labeled tasks' embeddings, then labels the unlabeled
pool with its own confident predictions (pseudo-labels, given a smaller weight) and fits again: the pool
tells the model where the classes lie, which matters most when there are only a few labels per class
(CEAL, Wang et al. 2016: query the uncertain tasks, pseudo-label the confident ones). Pseudo-labels live
only inside the model; nothing is written back as a label.

On banking77 (bench/active.py, 5 seeds) this learner reaches 95% of its full-data accuracy with far fewer
labels than the same regression on the labeled tasks alone; figures in the README's Benchmarks.

Direction: embeddings and labels in, probabilities out. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from studio.config import ConfigSection, require
from studio.errors import DataError, EmptyDataError
from studio.mathops import softmax
from studio.types import Embeddings, PredProbs

#: Where the pool's predictions come from: "auto" = the current training run if there is one, else the fast
#: learner (once two classes are labeled), else a cold start; "run" = only a training run; "fast" = always
#: the fast learner.
SCORERS = ("auto", "run", "fast")
#: The default [active] preannotate_threshold (bench/preannotate.py; README "Closing the loop").
PREANNOTATE_THRESHOLD = 0.8


@dataclass
class ActiveConfig(ConfigSection):
    """[active] in studio.toml: who scores the pool, and the fast learner's settings (bench/active.py)."""

    SECTION = "active"
    scorer: str = "auto"
    c: float = 0.3  # inverse L2 strength at the full pool size, on standardised embeddings
    c_power: float = 0.5  # C(n) = c * (n / pool size) ** c_power: more shrinkage while labels are few
    pseudo_weight: float = 0.5  # weight of one pseudo-label relative to a person's label; 0 = no self-training
    pseudo_threshold: float = 0.3  # pool tasks whose top probability reaches this get a pseudo-label
    max_iter: int = 300
    # A pushed task whose top-1 probability is below this gets its place in the queue but no pre-selected answer
    # (bench/preannotate.py: below 0.8 the fast learner's top-1 on banking77 pool tasks was right < 60% of the time).
    preannotate_threshold: float = PREANNOTATE_THRESHOLD
    refresh_every: int = 20  # after this many new annotations the ML backend refits the fast learner and pushes again

    def __post_init__(self) -> None:
        s = self.SECTION
        require(self.scorer in SCORERS, s, "scorer", self.scorer, f"one of {', '.join(SCORERS)}")
        require(self.c > 0, s, "c", self.c, "a positive number, e.g. 0.3")
        require(self.c_power >= 0, s, "c_power", self.c_power, "0 (constant C) or a positive power, e.g. 0.5")
        require(0 <= self.pseudo_weight <= 1, s, "pseudo_weight", self.pseudo_weight, "a number in [0, 1]")
        require(0 <= self.pseudo_threshold < 1, s, "pseudo_threshold", self.pseudo_threshold, "a number in [0, 1)")
        require(self.max_iter > 0, s, "max_iter", self.max_iter, "a positive number of iterations")
        require(0 <= self.preannotate_threshold <= 1, s, "preannotate_threshold", self.preannotate_threshold,
                "a probability in [0, 1] (0 = always pre-select the model's answer)")
        require(self.refresh_every >= 0, s, "refresh_every", self.refresh_every, "0 (off) or a positive count")


class SoftmaxRegression:
    """L2-regularised multinomial logistic regression over a fixed class list, fitted with L-BFGS.

    Same objective as sklearn's LogisticRegression(C=...) (C x weighted summed cross-entropy + 0.5 ||W||^2,
    bias not penalised), but it keeps every class (absent ones are just pushed down), takes per-row weights
    and warm-starts from its last fit, which makes an active-learning round a fraction of a cold fit.
    """

    def __init__(self, n_features: int, n_classes: int, *, C: float, max_iter: int = 300) -> None:
        self.C = C
        self.k = n_classes
        self.max_iter = max_iter
        self.w = np.zeros((n_features + 1, n_classes))

    def fit(self, x: np.ndarray, y: npt.NDArray[np.int64],
            sample_weight: np.ndarray | None = None) -> SoftmaxRegression:
        from scipy.optimize import minimize

        # The two (N, D) x (D, K) products are the whole cost: float32 halves it (the optimiser stays float64).
        xb = np.hstack([x, np.ones((len(x), 1))]).astype(np.float32)
        weight = np.ones(len(y), dtype=np.float32) if sample_weight is None else \
            np.asarray(sample_weight, dtype=np.float32)
        target = np.eye(self.k, dtype=np.float32)[y] * weight[:, None]
        mask = np.ones_like(self.w)
        mask[-1] = 0.0  # no penalty on the bias row

        def loss_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
            w = flat.reshape(self.w.shape)
            z = xb @ w.astype(np.float32)
            z -= z.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            loss = -self.C * float((target * logp).sum(dtype=np.float64)) + 0.5 * ((w * mask) ** 2).sum()
            grad = self.C * (xb.T @ (np.exp(logp) * weight[:, None] - target)).astype(np.float64) + w * mask
            return float(loss), grad.ravel()

        res = minimize(loss_grad, self.w.ravel(), jac=True, method="L-BFGS-B",
                       options={"maxiter": self.max_iter, "gtol": 1e-4})
        self.w = res.x.reshape(self.w.shape)
        return self

    def predict_proba(self, x: np.ndarray) -> PredProbs:
        return softmax(x @ self.w[:-1] + self.w[-1])


class FastLearner:
    """Self-trained logistic regression on embeddings; call `fit` again after each batch (it warm-starts).

    Features are standardised with the statistics of every task (labeled and pool), fixed at construction.
    """

    def __init__(self, all_embeddings: Embeddings, n_classes: int, *, config: ActiveConfig | None = None) -> None:
        x = np.asarray(all_embeddings, dtype=np.float64)
        if x.ndim != 2 or len(x) == 0:
            raise DataError(f"embeddings have shape {x.shape}; expected (N, D) with N >= 1.",
                            hint="embed the project's texts with studio.embeddings.encode")
        if n_classes < 2:
            raise EmptyDataError(f"The project has {n_classes} class(es); a model needs at least two.",
                                 hint="add classes to the labeling config")
        self.cfg = config or ActiveConfig()
        self.n_reference = len(x)
        self.mean, self.scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)
        self.model = SoftmaxRegression(x.shape[1], n_classes, C=self.cfg.c, max_iter=self.cfg.max_iter)
        self.self_trained = SoftmaxRegression(x.shape[1], n_classes, C=self.cfg.c, max_iter=self.cfg.max_iter)
        self.final = self.model
        self.pseudo_labels = 0

    def standardise(self, x: Embeddings) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.scale

    def fit(self, x_labeled: Embeddings, y: npt.ArrayLike, x_pool: Embeddings | None = None) -> FastLearner:
        """x_labeled: (n, D) embeddings of the labeled tasks, y: (n,) class indices; x_pool: (m, D) unlabeled."""
        y = np.asarray(y, dtype=np.int64)
        if len(y) != len(x_labeled):
            raise DataError(f"{len(x_labeled)} embeddings but {len(y)} labels; expected one label per row.",
                            hint="embed exactly the labeled tasks, in the same order")
        if len(np.unique(y)) < 2:
            raise EmptyDataError(f"The labeled tasks use {len(np.unique(y))} class(es); the fast learner needs "
                                 "at least two.", hint="label examples of at least two classes first")
        if (y < 0).any() or (y >= self.model.k).any():
            raise DataError(f"labels must be class indices in 0..{self.model.k - 1}.",
                            hint="map class names to indices in the labeling config's order")
        x = self.standardise(x_labeled)
        c = self.cfg.c * (len(y) / self.n_reference) ** self.cfg.c_power
        self.model.C = self.self_trained.C = c
        self.model.fit(x, y)
        self.final, self.pseudo_labels = self.model, 0
        if x_pool is None or len(x_pool) == 0 or self.cfg.pseudo_weight == 0:
            return self
        pool = self.standardise(x_pool)
        probs = self.model.predict_proba(pool)
        confident = np.flatnonzero(probs.max(axis=1) >= self.cfg.pseudo_threshold)
        if len(confident) == 0:
            return self
        self.self_trained.fit(np.vstack([x, pool[confident]]),
                              np.concatenate([y, probs[confident].argmax(axis=1)]),
                              np.concatenate([np.ones(len(y)), np.full(len(confident), self.cfg.pseudo_weight)]))
        self.final, self.pseudo_labels = self.self_trained, len(confident)
        return self

    def predict_proba(self, x: Embeddings) -> PredProbs:
        return self.final.predict_proba(self.standardise(x))
