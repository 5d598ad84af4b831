"""Several annotators per task: consensus labels, annotator quality (CROWDLAB) and agreement statistics.

    result = run_consensus(labels_multiannotator, class_names, texts=texts, embeddings=emb)
    result.tasks             # per task: consensus label + quality score, majority label, agreement
    result.annotators        # per annotator: quality (CROWDLAB), agreement with consensus, worst class
    result.agreement         # per class + "overall": Krippendorff's alpha (nominal) and percent agreement
    result.annotator_confusion  # long: annotator x consensus label x annotator label -> count

labels_multiannotator: (N tasks x M annotators) DataFrame, int class index or NaN where an annotator did not
label a task; columns are annotator names. Direction: arrays in, `ConsensusResult` out. No I/O.
"""

from __future__ import annotations

import warnings as _warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from studio.errors import DataError, EmptyDataError
from studio.probabilities import out_of_sample_pred_probs
from studio.types import Embeddings, PredProbs, ProgressFn


@dataclass
class ConsensusResult:
    """tasks: (N rows) consensus_label (int), consensus (name), consensus_quality (in [0, 1], lower = less
    sure), majority_label, majority (name), num_annotations, annotator_agreement (share agreeing with consensus).
    annotators: one row per annotator, best first: annotator_quality, agreement_with_consensus, worst_class,
    num_labeled. agreement: index = class names + "overall"; columns krippendorff_alpha, percent_agreement,
    n_pairs. annotator_confusion: long (annotator, consensus, label, count). pred_probs: (N, K) out-of-sample
    probabilities used by CROWDLAB; model: their source."""

    tasks: pd.DataFrame
    annotators: pd.DataFrame
    agreement: pd.DataFrame
    annotator_confusion: pd.DataFrame
    pred_probs: PredProbs
    model: str
    warnings: list[str] = field(default_factory=list)

    def confusion_for(self, annotator: str) -> pd.DataFrame:
        """(K, K) counts for one annotator: rows = consensus label, columns = the annotator's label."""
        rows = self.annotator_confusion[self.annotator_confusion["annotator"] == annotator]
        return rows.pivot_table(index="consensus", columns="label", values="count", aggfunc="sum", fill_value=0)


def _unit_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, K) how many annotators gave each class to each task (NaN = not labelled)."""
    counts = np.zeros((labels.shape[0], n_classes), dtype=np.int64)
    rows, cols = np.nonzero(~np.isnan(labels))
    np.add.at(counts, (rows, labels[rows, cols].astype(np.int64)), 1)
    return counts


def _alpha_from_counts(counts: np.ndarray) -> float:
    m = counts.sum(axis=1)
    counts = counts[m >= 2]  # a task labelled once has no pairs: it carries no reliability information
    m = m[m >= 2]
    if len(counts) == 0:
        return float("nan")
    weights = 1.0 / (m - 1)
    coincidence = (counts.T * weights) @ counts - np.diag((counts * weights[:, None]).sum(axis=0))
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    observed = coincidence.sum() - np.trace(coincidence)
    expected = (n_c.sum() ** 2 - (n_c ** 2).sum()) / (n - 1)
    if expected <= 0:
        # Only one value ever used: no disagreement is possible, so agreement is perfect by convention.
        return 1.0
    return float(1.0 - observed / expected)


def krippendorff_alpha(labels_multiannotator: pd.DataFrame | npt.ArrayLike, *, n_classes: int | None = None) -> float:
    """Krippendorff's alpha for nominal data. Input: (N units x M coders), class index or NaN.

    1 = perfect agreement, 0 = agreement at chance level, < 0 = systematic disagreement. Units with fewer
    than two values are ignored (Krippendorff 2011, "Computing Krippendorff's alpha-reliability").
    """
    labels = np.asarray(labels_multiannotator, dtype=float)
    k = int(np.nanmax(labels)) + 1 if n_classes is None else n_classes
    return _alpha_from_counts(_unit_counts(labels, k))


def percent_agreement(labels_multiannotator: pd.DataFrame | npt.ArrayLike, *, n_classes: int | None = None) -> float:
    """Share of annotator pairs on the same task that chose the same class (tasks with >= 2 labels)."""
    labels = np.asarray(labels_multiannotator, dtype=float)
    k = int(np.nanmax(labels)) + 1 if n_classes is None else n_classes
    counts = _unit_counts(labels, k)
    m = counts.sum(axis=1)
    pairs = (m * (m - 1)).sum()
    return float((counts * (counts - 1)).sum() / pairs) if pairs else float("nan")


def agreement_table(labels_multiannotator: pd.DataFrame | npt.ArrayLike, class_names: Sequence[str]) -> pd.DataFrame:
    """Per class (class c vs the rest, binarised) and "overall": krippendorff_alpha, percent_agreement
    (per class: specific agreement, the share of pair members choosing c whose partner also chose c), n_pairs."""
    labels = np.asarray(labels_multiannotator, dtype=float)
    counts = _unit_counts(labels, len(class_names))
    m = counts.sum(axis=1)
    multi = m >= 2
    rows = []
    for c, name in enumerate(class_names):
        both = counts[multi, c]
        binary = np.stack([both, m[multi] - both], axis=1)
        agree = (both * (both - 1)).sum()
        involved = (both * (m[multi] - 1)).sum()  # ordered pairs whose first member chose c
        rows.append({"class": name, "krippendorff_alpha": _alpha_from_counts(binary),
                     "percent_agreement": agree / involved if involved else np.nan, "n_pairs": int(involved)})
    pairs = int((m * (m - 1)).sum())
    rows.append({"class": "overall", "krippendorff_alpha": _alpha_from_counts(counts),
                 "percent_agreement": percent_agreement(labels, n_classes=len(class_names)), "n_pairs": pairs})
    return pd.DataFrame(rows).set_index("class")


def _validate(labels_multiannotator: pd.DataFrame, n_classes: int) -> tuple[pd.DataFrame, list[str]]:
    if not isinstance(labels_multiannotator, pd.DataFrame):
        labels_multiannotator = pd.DataFrame(labels_multiannotator)
    frame = labels_multiannotator.astype(float)
    if frame.shape[0] == 0 or frame.notna().sum().sum() == 0:
        raise EmptyDataError("labels_multiannotator has no labels.",
                             hint="sync annotations from Label Studio before computing consensus")
    values = frame.to_numpy()
    present = values[~np.isnan(values)]
    if (present < 0).any() or (present >= n_classes).any() or (present != np.round(present)).any():
        raise DataError(f"labels_multiannotator holds values outside the class indices 0..{n_classes - 1}.",
                        hint="map each annotator's label to class_names.index(label); NaN where not labelled")
    empty_rows = np.flatnonzero(np.isnan(values).all(axis=1))
    if len(empty_rows):
        raise DataError(f"{len(empty_rows)} task row(s) of labels_multiannotator have no label at all "
                        f"(rows {empty_rows[:10].tolist()}).", hint="drop unlabelled tasks before consensus")
    warnings = []
    empty_cols = [str(c) for c in frame.columns[frame.isna().all(axis=0)]]
    if empty_cols:
        warnings.append(f"Annotators without any label were ignored: {', '.join(empty_cols)}.")
        frame = frame.drop(columns=[c for c in frame.columns if str(c) in empty_cols])
    if (frame.notna().sum(axis=1) < 2).all():
        raise EmptyDataError("Every task has a single annotator, so there is nothing to reach consensus on.",
                             hint="have at least some tasks labelled by two or more people (Label Studio's "
                                  "overlap setting), or use studio.quality.run_quality on the single labels")
    return frame, warnings


def run_consensus(
    labels_multiannotator: pd.DataFrame,
    class_names: Sequence[str],
    *,
    texts: Sequence[str] | None = None,
    embeddings: Embeddings | None = None,
    pred_probs: PredProbs | None = None,
    rounds: int = 1,
    candidates: Sequence[str] = ("embedding_lr", "embedding_knn", "ensemble"),
    folds: int = 5,
    seed: int = 0,
    threads: int = 1,
    progress: ProgressFn | None = None,
) -> ConsensusResult:
    """Consensus labels and annotator quality with CROWDLAB (cleanlab.multiannotator).

    CROWDLAB weighs each annotator's labels and a model's out-of-sample pred_probs. Without `pred_probs`, they
    are cross-validated on `embeddings` (N, D) (and `texts`) against the majority vote, then refit on the
    consensus for `rounds - 1` more rounds (a second round did not help on banking77 in bench/consensus.py,
    hence the default 1).
    Tasks with a single annotator still get a consensus label. threads: BLAS threads (1 avoids spin-waiting
    on a small shared machine, see QualityConfig.threads; 0 = library default). Raises EmptyDataError / DataError.
    """
    if threads > 0:
        import scipy.optimize  # noqa: F401  (load every BLAS first: threadpoolctl limits only loaded ones)
        import sklearn.linear_model  # noqa: F401
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads):
            return _run_consensus(labels_multiannotator, class_names, texts=texts, embeddings=embeddings,
                                  pred_probs=pred_probs, rounds=rounds, candidates=candidates, folds=folds,
                                  seed=seed, progress=progress)
    return _run_consensus(labels_multiannotator, class_names, texts=texts, embeddings=embeddings,
                          pred_probs=pred_probs, rounds=rounds, candidates=candidates, folds=folds, seed=seed,
                          progress=progress)


def _run_consensus(labels_multiannotator: pd.DataFrame, class_names: Sequence[str], *,
                   texts: Sequence[str] | None, embeddings: Embeddings | None, pred_probs: PredProbs | None,
                   rounds: int, candidates: Sequence[str], folds: int, seed: int,
                   progress: ProgressFn | None) -> ConsensusResult:
    from cleanlab.multiannotator import get_label_quality_multiannotator, get_majority_vote_label

    class_names = [str(c) for c in class_names]
    k = len(class_names)
    frame, warnings = _validate(labels_multiannotator, k)
    n = frame.shape[0]
    values = frame.to_numpy()
    if pred_probs is None and embeddings is None:
        raise DataError("run_consensus needs pred_probs or embeddings, got neither.",
                        hint="pass embeddings=studio.embeddings.encode(texts) (and texts) or out-of-sample pred_probs")
    if rounds < 1:
        raise DataError(f"rounds = {rounds!r} is invalid: expected 1 or more.", hint="use rounds=2")
    texts = list(texts) if texts is not None else [""] * n
    if len(texts) != n or (embeddings is not None and len(embeddings) != n):
        raise DataError(f"texts/embeddings must have {n} rows, one per task of labels_multiannotator.",
                        hint="build them from the same snapshot rows, in the same order")

    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")  # cleanlab's notes on ties / single labels: reported via the result
        majority = np.asarray(get_majority_vote_label(values, pred_probs, verbose=False), dtype=np.int64)
    consensus = majority
    model = "external"
    result: dict = {}
    total = rounds
    for r in range(rounds):
        if pred_probs is None or (r > 0 and model != "external"):
            if len(np.unique(consensus)) < 2:
                probs = np.full((n, k), 1.0 / k)
                model = "uniform"
            else:
                fit = out_of_sample_pred_probs(texts, consensus, n_classes=k, embeddings=embeddings,
                                               candidates=candidates,
                                               folds=folds, seed=seed)
                probs, model = fit.pred_probs, fit.model
                warnings.extend(w for w in fit.warnings if w not in warnings)
        else:
            probs = np.asarray(pred_probs, dtype=float)
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            result = get_label_quality_multiannotator(frame, probs, verbose=False)
        consensus = result["label_quality"]["consensus_label"].to_numpy().astype(np.int64)
        if progress:
            progress(r + 1, total)
        if model == "external":
            break

    # A tie (annotators split evenly between classes) says nothing about which of them is right: the task is
    # flagged, and annotator quality is estimated from the other tasks only, or not at all.
    counts = _unit_counts(values, k)
    top = counts.max(axis=1, keepdims=True)
    tie = (counts.sum(axis=1) >= 2) & ((counts == top).sum(axis=1) >= 2)
    quality = result["label_quality"]
    names = np.asarray(class_names, dtype=object)
    tasks = pd.DataFrame({
        "consensus_label": consensus,
        "consensus": names[consensus],
        "consensus_quality": quality["consensus_quality_score"].to_numpy(),
        "majority_label": majority,
        "majority": names[majority],
        "num_annotations": quality["num_annotations"].to_numpy(),
        "annotator_agreement": quality["annotator_agreement"].to_numpy(),
        "tie": tie,
    }, index=frame.index)
    stats = result["annotator_stats"]
    if tie.any():
        stats, note = _stats_without_ties(frame, probs, tie)
        warnings.append(note)
    annotators = pd.DataFrame({
        "annotator": stats.index.astype(str),
        "annotator_quality": stats["annotator_quality"].to_numpy(),
        "agreement_with_consensus": stats["agreement_with_consensus"].to_numpy(),
        "worst_class": [class_names[int(c)] for c in stats["worst_class"]],
        "num_labeled": stats["num_examples_labeled"].to_numpy(),
    }).sort_values("annotator_quality", ascending=False, kind="stable").reset_index(drop=True)
    return ConsensusResult(tasks=tasks, annotators=annotators, agreement=agreement_table(values, class_names),
                           annotator_confusion=_annotator_confusion(frame, consensus, class_names),
                           pred_probs=probs, model=model, warnings=warnings)


def _stats_without_ties(frame: pd.DataFrame, probs: np.ndarray, tie: np.ndarray) -> tuple[pd.DataFrame, str]:
    """CROWDLAB's annotator statistics on the tasks that are not ties; an annotator with no such task (or every
    annotator, when every task is a tie) gets NaN quality. Returns (stats indexed by annotator, the note)."""
    from cleanlab.multiannotator import get_label_quality_multiannotator

    n_tie = int(tie.sum())
    note = (f"{n_tie} task(s) are ties: their annotators split evenly between classes, so none of them can be "
            "told right. They are flagged (tie) and left out of annotator quality; decide them on the Quality page "
            "or ask one more annotator.")
    rest = frame.loc[~tie]
    rest = rest.loc[:, rest.notna().any(axis=0)]
    empty = pd.DataFrame({"annotator_quality": np.nan, "agreement_with_consensus": np.nan, "worst_class": 0,
                          "num_examples_labeled": frame.notna().sum(axis=0).to_numpy()}, index=frame.columns)
    if len(rest) == 0 or rest.shape[1] == 0 or not (rest.notna().sum(axis=1) >= 2).any():
        return empty, note + " No task without a tie has two annotators: annotator quality is not estimated."
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        stats = get_label_quality_multiannotator(rest, probs[~tie], verbose=False)["annotator_stats"]
    out = empty.copy()
    for column in ("annotator_quality", "agreement_with_consensus", "worst_class"):
        out.loc[stats.index, column] = stats[column].to_numpy()
    out["worst_class"] = out["worst_class"].astype(int)
    return out, note


def _annotator_confusion(frame: pd.DataFrame, consensus: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    long = frame.assign(_consensus=consensus).melt(id_vars="_consensus", var_name="annotator", value_name="label")
    long = long.dropna(subset=["label"])
    names = np.asarray(class_names, dtype=object)
    long = long.assign(annotator=long["annotator"].astype(str), consensus=names[long["_consensus"].to_numpy()],
                       label=names[long["label"].to_numpy().astype(np.int64)])
    return (long.groupby(["annotator", "consensus", "label"], sort=True).size().rename("count").reset_index())


def annotators_against_model(issues: pd.DataFrame) -> pd.DataFrame:
    """Each annotator's labels against the out-of-sample model, on the tasks they labeled alone: what shows a weak
    annotator when no task has a second annotator (CROWDLAB needs overlap; this does not).

    issues: a quality report's issue table (studio/checks: label_issue rows with score = label quality, is_issue,
    annotators). Returns one row per annotator, weakest first: annotator, tasks (labeled alone), label_quality (mean
    score: the model's out-of-sample belief in their labels, 0-1), flagged (share of those tasks whose label is
    flagged), against_others (flagged share minus that of everyone else's single-annotator tasks: above 0 = worse
    than the rest)."""
    columns = ["annotator", "tasks", "label_quality", "flagged", "against_others"]
    rows = issues[issues["issue_type"] == "label_issue"].drop_duplicates("task_id")
    alone = rows[rows["annotators"].map(lambda a: a is not None and len(a) == 1)]
    if alone.empty:
        return pd.DataFrame(columns=columns)
    alone = alone.assign(annotator=alone["annotators"].map(lambda a: str(list(a)[0])))
    flags = alone["is_issue"].astype(bool)
    out = []
    for who, part in alone.groupby("annotator"):
        rest = flags[alone["annotator"] != who]
        share = float(part["is_issue"].astype(bool).mean())
        out.append({"annotator": who, "tasks": int(len(part)), "label_quality": float(part["score"].mean()),
                    "flagged": share, "against_others": share - float(rest.mean()) if len(rest) else 0.0})
    return pd.DataFrame(out, columns=columns).sort_values("label_quality", kind="stable", ignore_index=True)
