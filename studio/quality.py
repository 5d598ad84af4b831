"""Label quality: out-of-sample probabilities, then every registered check, as one long issue table.

    report = run_quality(texts, labels, class_names, embeddings=encode(texts, cache_dir=...))
    report.issues            # long form, columns studio.checks.ISSUE_COLUMNS, one row per (task, issue type)
    report.flagged()         # only is_issue rows, worst first
    report.class_summary     # per class: count, issue rate, mean label quality, most confused with
    report.confusion         # (K, K) given x predicted, out-of-sample

Direction: arrays in, `QualityReport` out. No I/O, no Label Studio, no Streamlit; torch is never imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from studio.checks import CHECKS, Check, QualityContext, get_check, knn_graph
from studio.checks.base import empty_issues
from studio.checks.label_issues import find_label_issues, flag_label_issues, label_quality_scores
from studio.checks.summary import confusion_frame, per_class_summary
from studio.config import ConfigSection, require
from studio.errors import DataError, EmptyDataError
from studio.probabilities import CANDIDATES, out_of_sample_pred_probs, validate_labels
from studio.types import Embeddings, PredProbs, ProgressFn

_SCORE_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
_FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given",
            "low_normalized_margin", "low_self_confidence")


@dataclass
class QualityConfig(ConfigSection):
    """[quality] in studio.toml. Defaults were chosen on banking77 with injected noise and checked on
    convabuse (see bench/quality.py): the average of LR and kNN on embeddings and naive Bayes on TF-IDF words,
    ranked by normalized margin. The text view costs about a second and adds what the embeddings blur: on
    banking77 with 20% noise towards the nearest class it raised both the F1 of the flagged labels and the
    curated-label accuracy (measured in bench/quality.py; figures in the README's Benchmarks)."""

    SECTION = "quality"
    folds: int = 5
    seed: int = 0
    candidates: list[str] = field(default_factory=lambda: ["embedding_lr", "embedding_knn", "tfidf_nb", "ensemble"])
    lr_c: float = 3.0
    lr_max_iter: int = 100
    knn_k: int = 10
    score_method: str = "normalized_margin"
    filter_by: str = "prune_by_noise_rate"
    #: Refit rounds: the candidates are fitted again (still out of sample) without the flagged labels, and every
    #: given label is scored by the refit model. A model trained on noisy labels learns part of the noise; the
    #: refit one learns less of it. Leaving the flagged rows out, rather than relabelling them to the model's
    #: guess, teaches no guess as truth. On banking77 with 20% noise towards the nearest class one round lifts
    #: both F1 and AUROC of the flagged labels (bench/quality.py, 3 noise seeds; figures in the README's
    #: Benchmarks), for about twice the time of the probability step. 0 = off.
    refit_rounds: int = 1
    #: Cosine similarity for "near duplicate". MiniLM puts paraphrases ("how do I track the card you sent?" /
    #: "a card was sent to me, how do I track it?") just below this threshold, and a lower one chains such
    #: paraphrases into large groups on banking77.
    near_duplicate_threshold: float = 0.98
    #: Auto-fix (Quality page, `studio autofix`): flagged label issues whose suggested label the out-of-sample
    #: model gives at least this probability are relabelled to it in one go; the rest wait for a person. How
    #: many flagged labels it relabels and how often its suggestion is right, at 0.9 and 0.8, on banking77 and
    #: convabuse: measured in bench/quality.py, figures in the README's Benchmarks.
    auto_fix_confidence: float = 0.9
    outlier_k: int = 10
    outlier_iqr_factor: float = 3.0
    rare_class_ratio: float = 0.25
    min_class_count: int = 10
    #: BLAS threads while the checks run. 1 is fastest on a small shared machine: OpenBLAS threads spin-wait
    #: for a core and made logistic regression 8x slower under load. 0 = leave the library default.
    threads: int = 1

    def __post_init__(self) -> None:
        s = self.SECTION
        require(self.folds >= 2, s, "folds", self.folds, "an integer >= 2")
        require(bool(self.candidates) and all(c in CANDIDATES for c in self.candidates), s, "candidates",
                self.candidates, f"a non-empty list from {sorted(CANDIDATES)}")
        require(self.lr_c > 0, s, "lr_c", self.lr_c, "a positive inverse regularisation strength")
        require(self.lr_max_iter >= 1, s, "lr_max_iter", self.lr_max_iter, "an integer >= 1")
        require(self.knn_k >= 1, s, "knn_k", self.knn_k, "an integer >= 1")
        require(self.score_method in _SCORE_METHODS, s, "score_method", self.score_method, f"one of {_SCORE_METHODS}")
        require(self.filter_by in _FILTERS, s, "filter_by", self.filter_by, f"one of {_FILTERS}")
        require(self.refit_rounds >= 0, s, "refit_rounds", self.refit_rounds, "0 (off) or a number of rounds, e.g. 1")
        require(0 < self.near_duplicate_threshold <= 1, s, "near_duplicate_threshold",
                self.near_duplicate_threshold, "a cosine similarity in (0, 1]")
        require(0 < self.auto_fix_confidence <= 1, s, "auto_fix_confidence", self.auto_fix_confidence,
                "a probability in (0, 1]")
        require(self.outlier_k >= 1, s, "outlier_k", self.outlier_k, "an integer >= 1")
        require(self.outlier_iqr_factor > 0, s, "outlier_iqr_factor", self.outlier_iqr_factor, "a positive number")
        require(0 <= self.rare_class_ratio <= 1, s, "rare_class_ratio", self.rare_class_ratio, "a fraction in [0, 1]")
        require(self.min_class_count >= 0, s, "min_class_count", self.min_class_count, "0 or more")
        require(self.threads >= 0, s, "threads", self.threads, "0 (library default) or a number of threads")


@dataclass
class QualityReport:
    """issues: long table (studio.checks.ISSUE_COLUMNS), sorted by issue type then score (worst first).
    class_summary: one row per class (see per_class_summary). confusion: (K, K) given x predicted counts.
    pred_probs: (N, K) out-of-sample probabilities used. model: the chosen probability model;
    model_scores: its log-loss per candidate on the given labels (lower = better); refit: pred_probs come from
    a refit round without the flagged labels (QualityConfig.refit_rounds). warnings: things the user should know."""

    issues: pd.DataFrame
    class_summary: pd.DataFrame
    confusion: pd.DataFrame
    pred_probs: PredProbs
    model: str
    model_scores: dict[str, float]
    refit: bool
    label_quality: npt.NDArray[np.floating]
    warnings: list[str]

    def flagged(self, issue_type: str | None = None) -> pd.DataFrame:
        """Rows with is_issue, optionally of one type, lowest score first."""
        rows = self.issues[self.issues["is_issue"]]
        if issue_type is not None:
            rows = rows[rows["issue_type"] == issue_type]
        return rows.sort_values("score", kind="stable").reset_index(drop=True)


def run_quality(
    texts: Sequence[str],
    labels: npt.ArrayLike,
    class_names: Sequence[str],
    *,
    embeddings: Embeddings,
    task_ids: npt.ArrayLike | None = None,
    checks: Sequence[str] | None = None,
    config: QualityConfig | None = None,
    pred_probs: PredProbs | None = None,
    progress: ProgressFn | None = None,
) -> QualityReport:
    """Run the label-quality checks on N labelled texts.

    texts: N strings; labels: (N,) int indices into class_names (K names); embeddings: (N, D) L2-normalised
    (studio.embeddings.encode); task_ids: (N,) ids carried into the issue table (default 0..N-1);
    checks: names from studio.checks.available_checks() (None = all); pred_probs: an optional (N, K)
    out-of-sample matrix from elsewhere (e.g. a LoRA run), compared with the built-in candidates.
    progress(done, total) is called as stages finish. Lower scores = more likely a problem.
    Raises EmptyDataError (no labels, one class) and DataError (mismatched shapes).
    """
    config = config or QualityConfig()
    class_names = [str(c) for c in class_names]
    n = len(texts)
    if n == 0:
        raise EmptyDataError("texts is empty: there are no labelled tasks to check.",
                             hint="label some tasks in Label Studio, sync, and run the quality check again")
    y = validate_labels(labels, len(class_names), n_rows=n)
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != n:
        raise DataError(f"embeddings has shape {emb.shape}; expected ({n}, D), one row per text.",
                        hint="pass studio.embeddings.encode(texts) for exactly these texts, in order")
    ids = np.arange(n) if task_ids is None else np.asarray(task_ids)
    if len(ids) != n:
        raise DataError(f"task_ids has {len(ids)} entries but there are {n} texts; expected one per text.",
                        hint="build texts, labels and task_ids from the same snapshot rows")
    names = list(CHECKS) if checks is None else list(checks)
    selected = [get_check(name) for name in names]  # unknown names fail before any work is done

    if config.threads > 0:
        import scipy.optimize  # noqa: F401  (load every BLAS first: threadpoolctl limits only loaded ones)
        import sklearn.linear_model  # noqa: F401
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=config.threads):
            return _run(texts, y, class_names, emb, ids, selected, config, pred_probs, progress)
    return _run(texts, y, class_names, emb, ids, selected, config, pred_probs, progress)


def _run(texts: Sequence[str], y: np.ndarray, class_names: list[str], emb: Embeddings, ids: np.ndarray,
         selected: list[Check], config: QualityConfig, pred_probs: PredProbs | None,
         progress: ProgressFn | None) -> QualityReport:
    """run_quality after validation: inputs are consistent here."""
    n = len(y)
    total = 3 + len(selected)
    step = 0

    def advance() -> None:
        nonlocal step
        step += 1
        if progress:
            progress(step, total)

    graph = knn_graph(emb, k=max(config.knn_k, config.outlier_k, 10))
    advance()

    def fit(exclude: np.ndarray | None = None):
        return out_of_sample_pred_probs(texts, y, n_classes=len(class_names), embeddings=emb,
                                        candidates=config.candidates, folds=config.folds, seed=config.seed,
                                        lr_c=config.lr_c, lr_max_iter=config.lr_max_iter, knn_k=config.knn_k,
                                        knn=graph, external=pred_probs, exclude=exclude, class_names=class_names)

    first = fit()
    warnings = list(first.warnings)
    pred = first.pred_probs
    refit = False
    # An external matrix (e.g. a LoRA run's) is fixed: there is nothing to refit when it was chosen.
    for _ in range(config.refit_rounds if first.model != "external" else 0):
        flagged = find_label_issues(y, pred, filter_by=config.filter_by)
        if not flagged.any():
            break
        try:
            # The model chosen on the given labels is kept: log-loss is measured on the labels the refit model
            # did not learn from, which would favour whichever candidate did the flagging.
            pred = fit(exclude=flagged).candidate_probs[first.model]
        except EmptyDataError as exc:  # too few classes left to learn from: keep the probabilities so far
            warnings.append(f"The refit round was skipped: {exc}")
            break
        refit = True
    # After a refit, confident learning still estimates how many labels are wrong, but which ones is read off
    # the refit model's ranking (the per-class pruning order is noisier than the global score order).
    issue_count = int(find_label_issues(y, pred, filter_by=config.filter_by).sum()) if refit else None
    advance()
    ctx = QualityContext(texts=texts, labels=y, class_names=class_names, task_ids=ids,
                         pred_probs=pred, embeddings=emb, knn=graph, options=config.to_dict(),
                         label_issue_count=issue_count)
    frames = []
    for check in selected:
        frames.append(check.run(ctx))
        advance()
    frames = [f for f in frames if len(f)]
    issues = pd.concat(frames, ignore_index=True) if frames else empty_issues()
    issues = issues.sort_values(["issue_type", "score", "task_index"], kind="stable").reset_index(drop=True)

    quality = label_quality_scores(y, pred, method=config.score_method)
    label_rows = issues[issues["issue_type"] == "label_issue"]
    if len(label_rows):
        is_issue = np.zeros(n, dtype=bool)
        is_issue[label_rows["task_index"].to_numpy()] = label_rows["is_issue"].to_numpy()
    else:
        is_issue = flag_label_issues(y, pred, quality, filter_by=config.filter_by, count=issue_count)
    summary = per_class_summary(y, pred, class_names, label_quality=quality, is_label_issue=is_issue,
                                rare_class_ratio=config.rare_class_ratio, min_class_count=config.min_class_count)
    advance()
    return QualityReport(issues=issues, class_summary=summary,
                         confusion=confusion_frame(y, pred, class_names), pred_probs=pred,
                         model=first.model, model_scores=first.log_loss, refit=refit, label_quality=quality,
                         warnings=warnings)
