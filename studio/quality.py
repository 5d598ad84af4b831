"""Label quality: out-of-sample probabilities, then every registered check, as one long issue table.

    report = run_quality(texts, labels, class_names, embeddings=encode(texts, cache_dir=...))
    # long documents: embeddings=None (dense_view(texts, config) says which), the TF-IDF view alone
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
from studio.checks.neighbours import EXACT_MAX_ROWS
from studio.checks.label_issues import find_label_issues, flag_label_issues, label_quality_scores
from studio.checks.summary import confusion_frame, per_class_summary
from studio.config import ConfigSection, require
from studio.errors import DataError, EmptyDataError
from studio.probabilities import CANDIDATES, choice_figures, out_of_sample_pred_probs, validate_labels
from studio.types import Embeddings, PredProbs, ProgressFn

_SCORE_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
_DENSE_VIEWS = ("auto", "always", "never")
_FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given",
            "low_normalized_margin", "low_self_confidence")


@dataclass
class QualityConfig(ConfigSection):
    """[quality] in studio.toml. Defaults measured on banking77, longdocs and convabuse with injected noise
    (bench/quality.py; figures in the README's Benchmarks and bench/results/quality.json): on short texts the
    average of logistic regression and a kNN vote on embeddings and naive Bayes on TF-IDF words, ranked by
    normalized margin (self-confidence put 40 fewer true errors in banking77's worst 2% at 20% nearest-class
    noise, and tied elsewhere). Long documents (median over `dense_max_words` words) are not embedded: the
    TF-IDF view alone (logistic regression, naive Bayes and a kNN vote on TF-IDF neighbours) reads every word,
    where embedding whole articles costs minutes (longdocs: 476 s for 2,225 articles on 2 busy cores) for an F1
    gain of about 0.01."""

    SECTION = "quality"
    folds: int = 5
    seed: int = 0
    #: Probability candidates when the texts are embedded. tfidf_lr and tfidf_knn are not among them by default:
    #: averaged in, each lowered the F1 of the flagged labels on banking77 and convabuse and raised it on longdocs
    #: only (bench/quality.py, 20% noise).
    candidates: list[str] = field(default_factory=lambda: ["embedding_lr", "embedding_knn", "tfidf_nb", "ensemble"])
    #: ... and when they are not (dense_view): TF-IDF logistic regression, naive Bayes, a kNN vote on TF-IDF.
    sparse_candidates: list[str] = field(default_factory=lambda: ["tfidf_lr", "tfidf_nb", "tfidf_knn", "ensemble"])
    lr_c: float = 3.0
    lr_max_iter: int = 100
    knn_k: int = 10
    #: Inverse L2 strength of the TF-IDF logistic regression (unit-norm sparse rows want more than embeddings).
    tfidf_c: float = 10.0
    #: When the encoder's embeddings are used: "auto" = when the median text has at most `dense_max_words`
    #: words (about one 128-token window); "always"; "never" (TF-IDF only). Without embeddings the embedding_*
    #: candidates are left out and outliers / near-duplicates use TF-IDF neighbours.
    dense_view: str = "auto"
    dense_max_words: int = 100
    score_method: str = "normalized_margin"
    filter_by: str = "prune_by_noise_rate"
    #: Refit rounds: the candidates are fitted again (still out of sample) without the flagged labels, and every
    #: given label is scored by the refit model. A model trained on noisy labels learns part of the noise; the
    #: refit one learns less of it. Leaving the flagged rows out, rather than relabelling them to the model's
    #: guess, teaches no guess as truth. Measured on three data sets in bench/quality.py (README's
    #: Benchmarks). 0 = off.
    refit_rounds: int = 1
    #: After a refit round, how many flags and where: "overall" = the lowest label-quality scores over all
    #: classes, as many as confident learning estimates in total; "per_class" = in each given class as many as
    #: it estimates for that class (cleanlab's per-class calibration). Overall had the higher F1 on all three
    #: benchmarks (banking77 0.856 vs 0.844, convabuse 0.878 vs 0.833, longdocs 0.969 vs 0.967 at 20% noise),
    #: so it is the default; the report's per-class table and a warning show a class taking far more than its
    #: share of the flags.
    refit_flags: str = "overall"
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
    #: Up to this many texts the neighbour graph (kNN vote, outliers, near-duplicates) is exact; above, an IVF
    #: index finds it (studio/checks/neighbours.py). The exact graph is N² work: 714 s of a 794 s pass over
    #: 100,000 texts, against 57 s of 91 s with the index. 0 = always approximate. Forced on banking77, the index
    #: found 99.6% of the exact 10 neighbours and moved the F1 of the flagged labels by at most 0.002 (the spread
    #: over noise seeds: 0.001-0.005); on the given labels the same label issues and near-duplicates, and 19
    #: outliers where the exact graph has 17, those 17 among them (bench/quality_scale.py).
    exact_knn_max_rows: int = EXACT_MAX_ROWS
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
        require(bool(self.sparse_candidates) and all(c in CANDIDATES and not c.startswith("embedding_")
                                                     for c in self.sparse_candidates), s, "sparse_candidates",
                self.sparse_candidates,
                f"a non-empty list from {sorted(c for c in CANDIDATES if not c.startswith('embedding_'))}")
        require(self.lr_c > 0, s, "lr_c", self.lr_c, "a positive inverse regularisation strength")
        require(self.lr_max_iter >= 1, s, "lr_max_iter", self.lr_max_iter, "an integer >= 1")
        require(self.knn_k >= 1, s, "knn_k", self.knn_k, "an integer >= 1")
        require(self.tfidf_c > 0, s, "tfidf_c", self.tfidf_c, "a positive inverse regularisation strength")
        require(self.dense_view in _DENSE_VIEWS, s, "dense_view", self.dense_view, f"one of {_DENSE_VIEWS}")
        require(self.dense_max_words >= 1, s, "dense_max_words", self.dense_max_words, "a number of words >= 1")
        require(self.score_method in _SCORE_METHODS, s, "score_method", self.score_method, f"one of {_SCORE_METHODS}")
        require(self.filter_by in _FILTERS, s, "filter_by", self.filter_by, f"one of {_FILTERS}")
        require(self.refit_flags in ("overall", "per_class"), s, "refit_flags", self.refit_flags,
                "'overall' or 'per_class'")
        require(self.refit_rounds >= 0, s, "refit_rounds", self.refit_rounds, "0 (off) or a number of rounds, e.g. 1")
        require(0 < self.near_duplicate_threshold <= 1, s, "near_duplicate_threshold",
                self.near_duplicate_threshold, "a cosine similarity in (0, 1]")
        require(0 < self.auto_fix_confidence <= 1, s, "auto_fix_confidence", self.auto_fix_confidence,
                "a probability in (0, 1]")
        require(self.outlier_k >= 1, s, "outlier_k", self.outlier_k, "an integer >= 1")
        require(self.exact_knn_max_rows >= 0, s, "exact_knn_max_rows", self.exact_knn_max_rows,
                "0 (always approximate) or a number of texts")
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
    a refit round without the flagged labels (QualityConfig.refit_rounds). warnings: things the user should know.
    choice: why the model was chosen (studio.probabilities.choice_figures); view: "embeddings + TF-IDF" or
    "TF-IDF" and why; texts: their length in words (median, p90, max)."""

    issues: pd.DataFrame
    class_summary: pd.DataFrame
    confusion: pd.DataFrame
    pred_probs: PredProbs
    model: str
    model_scores: dict[str, float]
    refit: bool
    label_quality: npt.NDArray[np.floating]
    warnings: list[str]
    choice: dict = field(default_factory=dict)
    view: dict = field(default_factory=dict)
    texts: dict = field(default_factory=dict)

    def flagged(self, issue_type: str | None = None) -> pd.DataFrame:
        """Rows with is_issue, optionally of one type, lowest score first."""
        rows = self.issues[self.issues["is_issue"]]
        if issue_type is not None:
            rows = rows[rows["issue_type"] == issue_type]
        return rows.sort_values("score", kind="stable").reset_index(drop=True)


def text_lengths(texts: Sequence[str]) -> dict[str, int]:
    """Length of the texts in words (whitespace-separated): median, 90th percentile, max."""
    words = np.array([len(str(t).split()) for t in texts]) if len(texts) else np.zeros(1)
    return {"median_words": int(np.median(words)), "p90_words": int(np.percentile(words, 90)),
            "max_words": int(words.max())}


def dense_view(texts: Sequence[str], config: QualityConfig | None = None) -> tuple[bool, str]:
    """(embed the texts?, why) for QualityConfig.dense_view. Decide before embedding: embedding long documents
    whole is most of a cold pass's time."""
    config = config or QualityConfig()
    if config.dense_view != "auto":
        return config.dense_view == "always", f"[quality] dense_view = {config.dense_view!r}"
    median = text_lengths(texts)["median_words"]
    if median <= config.dense_max_words:
        return True, f"the median text has {median} words (at most dense_max_words = {config.dense_max_words})"
    return False, (f"the median text has {median} words (over dense_max_words = {config.dense_max_words}): the "
                   "TF-IDF view reads every word, embedding whole documents would take minutes for a small gain")


def run_quality(
    texts: Sequence[str],
    labels: npt.ArrayLike,
    class_names: Sequence[str],
    *,
    embeddings: Embeddings | None,
    task_ids: npt.ArrayLike | None = None,
    checks: Sequence[str] | None = None,
    config: QualityConfig | None = None,
    pred_probs: PredProbs | None = None,
    progress: ProgressFn | None = None,
) -> QualityReport:
    """Run the label-quality checks on N labelled texts.

    texts: N strings; labels: (N,) int indices into class_names (K names); embeddings: (N, D) L2-normalised
    (studio.embeddings.encode), or None (long documents, `dense_view`): the embedding candidates are left out
    and the neighbour graph is built on TF-IDF (studio.sparse_model.text_vectors);
    task_ids: (N,) ids carried into the issue table (default 0..N-1);
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
    emb = None if embeddings is None else np.asarray(embeddings, dtype=np.float32)
    if emb is not None and (emb.ndim != 2 or emb.shape[0] != n):
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
        if n > config.exact_knn_max_rows:
            import faiss  # noqa: F401  (its OpenMP threads too: the approximate neighbour graph)
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

    candidates = list(config.candidates if emb is not None else config.sparse_candidates)
    view = {"embeddings": emb is not None, "candidates": candidates}
    k = max(config.knn_k, config.outlier_k, 10)
    text_graph = None
    exact_max = config.exact_knn_max_rows
    if emb is None:
        text_graph = knn_graph(_text_vectors(texts), k=k, exact_max_rows=exact_max)
        graph = text_graph
    else:
        graph = knn_graph(emb, k=k, exact_max_rows=exact_max)
        if "tfidf_knn" in candidates:
            text_graph = knn_graph(_text_vectors(texts), k=config.knn_k, exact_max_rows=exact_max)
    advance()
    features: dict = {}  # TF-IDF matrices use no labels: the refit round reuses the first fit's

    def fit(exclude: np.ndarray | None = None):
        return out_of_sample_pred_probs(texts, y, n_classes=len(class_names), embeddings=emb,
                                        candidates=candidates, folds=config.folds, seed=config.seed,
                                        lr_c=config.lr_c, lr_max_iter=config.lr_max_iter, knn_k=config.knn_k,
                                        tfidf_c=config.tfidf_c, knn=graph if emb is not None else None,
                                        text_knn=text_graph, feature_cache=features, external=pred_probs,
                                        exclude=exclude,
                                        class_names=class_names)

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
    # After a refit, confident learning still estimates how many labels are wrong (in all, or per class), but
    # which ones is read off the refit model's ranking (the per-class pruning order is noisier than the score
    # order).
    issue_count = None
    if refit:
        counts = _issue_counts(y, pred, config.filter_by, len(class_names))
        issue_count = counts if config.refit_flags == "per_class" else int(counts.sum())
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
    warnings += _flag_share_warnings(summary, int(is_issue.sum()))
    advance()
    return QualityReport(issues=issues, class_summary=summary,
                         confusion=confusion_frame(y, pred, class_names), pred_probs=pred,
                         model=first.model, model_scores=first.log_loss, refit=refit, label_quality=quality,
                         warnings=warnings, choice=choice_figures(y, first.candidate_probs, first.model),
                         view=view, texts=text_lengths(texts))


def _flag_share_warnings(summary: pd.DataFrame, flagged: int) -> list[str]:
    """A class that takes at least a fifth of the flags and three times its share of the labels: the model may be
    unsure of the class rather than its labels wrong (issue 16: one class held 75 of 188 flags and 8 of 82
    verified errors)."""
    heavy = summary[(summary["flag_share"] >= 0.2) & (summary["flag_share"] >= 3 * summary["share"])]
    if flagged < 10:
        return []
    return [f"Class {r['class']!r} holds {r['flag_share']:.0%} of the flagged labels but {r['share']:.0%} of the "
            f"labels ({int(r['label_issues'])} of its {int(r['count'])}): check a few of them before trusting the "
            "rest; the model may be unsure of the class rather than the labels wrong ([quality] refit_flags = "
            "'per_class' caps each class at its own estimate)." for _, r in heavy.iterrows()]


def _issue_counts(y: np.ndarray, pred: PredProbs, filter_by: str, n_classes: int) -> np.ndarray:
    """(K,) confident learning's estimate of how many labels of each given class are wrong."""
    return np.bincount(y[find_label_issues(y, pred, filter_by=filter_by)], minlength=n_classes)


def _text_vectors(texts: Sequence[str]):
    from studio.sparse_model import text_vectors

    return text_vectors(texts)
