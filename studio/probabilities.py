"""Out-of-sample predicted probabilities: the input every label-quality method needs.

Each candidate model gives an (N, K) matrix in which row i comes from a model that never saw example i
(K-fold cross-validation, or leave-one-out for the kNN vote). Candidates are compared by log-loss against the
given labels and the best one is used, except that the ensemble (their average) is kept unless a single
candidate beats it clearly (`choose_model`); all scores are reported so the choice can be audited.

Direction: texts / labels / embeddings in, `ProbabilityResult` out. No I/O.
"""

from __future__ import annotations

import warnings as _warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import numpy.typing as npt

from studio.checks.neighbours import KnnGraph, knn_graph
from studio.errors import DataError, EmptyDataError
from studio.types import Embeddings, PredProbs, ProgressFn

#: Probabilities are clipped to this floor before log-loss, so one overconfident row cannot dominate.
_EPS = 1e-6


@dataclass
class ProbabilityInputs:
    """Everything a candidate may use. folds: list of (train_rows, test_rows); the test rows cover every row once,
    the train rows leave out `excluded` ones. excluded: (N,) bool, rows no model may learn from (still scored)."""

    texts: Sequence[str]
    labels: npt.NDArray[np.int64]
    n_classes: int
    embeddings: Embeddings | None
    folds: list[tuple[np.ndarray, np.ndarray]]
    seed: int
    lr_c: float
    lr_max_iter: int
    knn_k: int
    knn: KnnGraph | None
    tick: Callable[[], None]
    excluded: npt.NDArray[np.bool_] | None = None


@dataclass
class ProbabilityResult:
    """pred_probs: (N, K) out-of-sample probabilities of the chosen candidate, rows sum to 1.
    model: name of the chosen candidate; log_loss: every candidate's cross-validated log-loss (lower = better);
    candidate_probs: each candidate's (N, K) matrix; folds: folds actually used; warnings: for the user."""

    pred_probs: PredProbs
    model: str
    log_loss: dict[str, float]
    candidate_probs: dict[str, PredProbs] = field(repr=False)
    folds: int
    warnings: list[str]


CandidateFn = Callable[[ProbabilityInputs], PredProbs]
CANDIDATES: dict[str, CandidateFn] = {}
#: Candidates that combine the others; computed after every base candidate.
COMBINERS = {"ensemble"}


def register_candidate(name: str) -> Callable[[CandidateFn], CandidateFn]:
    """Decorator: make a probability model selectable by name in QualityConfig.candidates."""

    def wrap(fn: CandidateFn) -> CandidateFn:
        CANDIDATES[name] = fn
        return fn

    return wrap


def _cross_val_lr(features: object, inp: ProbabilityInputs) -> PredProbs:
    from sklearn.linear_model import LogisticRegression

    out = np.zeros((len(inp.labels), inp.n_classes))
    model: LogisticRegression | None = None
    previous_classes: np.ndarray | None = None
    for train, test in inp.folds:
        classes = np.unique(inp.labels[train])
        # Folds differ by a fifth of the data, so the last fold's weights are a good start: warm starting
        # roughly halves the lbfgs iterations, which is most of the candidate's time.
        if model is None or previous_classes is None or not np.array_equal(classes, previous_classes):
            model = LogisticRegression(C=inp.lr_c, max_iter=inp.lr_max_iter, warm_start=True,
                                       random_state=inp.seed)
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")  # ConvergenceWarning: a few lbfgs steps short is fine here
            model.fit(features[train], inp.labels[train])  # type: ignore[index]
        out[np.ix_(test, classes)] = model.predict_proba(features[test])  # type: ignore[index]
        previous_classes = classes
        inp.tick()
    return out


@register_candidate("embedding_lr")
def _embedding_lr(inp: ProbabilityInputs) -> PredProbs:
    """Multinomial logistic regression on the frozen-encoder embeddings."""
    if inp.embeddings is None:
        raise DataError("candidate 'embedding_lr' needs embeddings, got None.",
                        hint="pass embeddings=studio.embeddings.encode(texts) or drop the candidate")
    return _cross_val_lr(inp.embeddings, inp)


def _tfidf_features(texts: Sequence[str], *, chars: bool) -> object:
    """Sparse TF-IDF of word 1-2-grams (+ character 2-5-grams with `chars`), fitted on all texts: the vocabulary
    uses no labels, so it leaks nothing into the folds."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [str(t) for t in texts]
    parts = [TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)]
    if chars:
        parts.append(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True))
    try:
        return hstack([v.fit_transform(texts) for v in parts]).tocsr()
    except ValueError:  # every n-gram occurs once (tiny or odd data): fall back to keeping all of them
        return TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3)).fit_transform(texts)


@register_candidate("tfidf_lr")
def _tfidf_lr(inp: ProbabilityInputs) -> PredProbs:
    """Logistic regression on TF-IDF word 1-2-grams + character 2-5-grams (sees spelling the encoder blurs)."""
    return _cross_val_lr(_tfidf_features(inp.texts, chars=True), inp)


@register_candidate("tfidf_nb")
def _tfidf_nb(inp: ProbabilityInputs) -> PredProbs:
    """Multinomial naive Bayes on TF-IDF word 1-2-grams: a second, independent view of the text in about a
    second (the logistic regression on TF-IDF, `tfidf_lr`, takes a minute on 10,000 texts).

    The embeddings place a mislabeled example next to the class it was confused with; the words it uses do not
    move, so averaging this view into the ensemble flags more of such errors (bench/quality.py).
    """
    from sklearn.naive_bayes import MultinomialNB

    features = _tfidf_features(inp.texts, chars=False)
    out = np.zeros((len(inp.labels), inp.n_classes))
    for train, test in inp.folds:
        model = MultinomialNB(alpha=0.1).fit(features[train], inp.labels[train])
        out[np.ix_(test, model.classes_)] = model.predict_proba(features[test])
    inp.tick()
    return out


@register_candidate("embedding_knn")
def _embedding_knn(inp: ProbabilityInputs) -> PredProbs:
    """Leave-one-out vote of the k nearest neighbours' labels (out-of-sample by construction).

    Local votes resist systematic noise better than a global linear model: an example flipped towards a
    similar class is still surrounded by neighbours that mostly carry its true label.
    """
    graph = inp.knn
    if graph is None or graph.k < inp.knn_k:
        if inp.embeddings is None:
            raise DataError("candidate 'embedding_knn' needs embeddings, got None.",
                            hint="pass embeddings=studio.embeddings.encode(texts) or drop the candidate")
        graph = knn_graph(inp.embeddings, k=inp.knn_k)
    k = min(inp.knn_k, graph.k)
    n = len(inp.labels)
    neighbours = graph.indices[:, :k]
    # An excluded neighbour casts no vote. Additive smoothing (half a vote spread over all classes) keeps every
    # probability above zero, also for a row whose neighbours are all excluded.
    weights = None if inp.excluded is None else (~inp.excluded[neighbours]).ravel().astype(float)
    flat = np.repeat(np.arange(n), k) * inp.n_classes + inp.labels[neighbours].ravel()
    votes = np.bincount(flat, weights=weights, minlength=n * inp.n_classes).reshape(n, inp.n_classes)
    out = votes + 0.5 / inp.n_classes
    inp.tick()
    return out / out.sum(axis=1, keepdims=True)


@register_candidate("ensemble")
def _ensemble(inp: ProbabilityInputs) -> PredProbs:  # pragma: no cover - computed in out_of_sample_pred_probs
    raise NotImplementedError("'ensemble' is the mean of the other candidates")


#: A single candidate replaces the ensemble only if its log-loss is lower by more than this many standard
#: errors of the per-task difference.
ENSEMBLE_MARGIN_SE = 2.0


def _task_log_loss(labels: npt.NDArray[np.int64], pred_probs: PredProbs) -> np.ndarray:
    return -np.log(np.clip(pred_probs[np.arange(len(labels)), labels], _EPS, 1.0))


def log_loss(labels: npt.NDArray[np.int64], pred_probs: PredProbs) -> float:
    """Mean negative log-probability of the given labels; lower = the model explains the labels better."""
    return float(np.mean(_task_log_loss(labels, pred_probs)))


def choose_model(labels: npt.NDArray[np.int64], probs: dict[str, PredProbs]) -> str:
    """The candidate with the lowest log-loss, but the ensemble while no single one is clearly better.

    Log-loss against the given labels is measured on those same, possibly wrong, labels: a model that learns
    the pattern of the mistakes (a class systematically labeled as its neighbour) scores better and then
    finds fewer of them. A difference within noise is no evidence either way, and the average of several
    views is the more robust choice. On banking77 with 20% noise towards the nearest class the ensemble
    trailed logistic regression by a small fraction of a standard error on one noise seed; choosing it
    anyway gave a clearly higher F1, in line with the other seeds (measured in bench/quality.py; figures in
    the README's Benchmarks).
    """
    per_task = {name: _task_log_loss(labels, p) for name, p in probs.items()}
    best = min(per_task, key=lambda name: float(per_task[name].mean()))
    if best == "ensemble" or "ensemble" not in per_task:
        return best
    diff = per_task["ensemble"] - per_task[best]
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return "ensemble" if float(diff.mean()) <= ENSEMBLE_MARGIN_SE * se else best


def validate_labels(labels: npt.ArrayLike, n_classes: int, *, n_rows: int | None = None,
                    name: str = "labels") -> npt.NDArray[np.int64]:
    """Return labels as int64 (N,) after checking: non-empty, integer indices in [0, K), >= 2 classes used."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise DataError(f"{name} has shape {arr.shape}; expected a 1-D array of class indices.",
                        hint="pass one integer class index per task")
    if n_rows is not None and len(arr) != n_rows:
        raise DataError(f"{name} has {len(arr)} entries but there are {n_rows} texts; expected one per text.",
                        hint="build texts and labels from the same rows of the snapshot")
    if len(arr) == 0:
        raise EmptyDataError(f"{name} is empty: there are no labelled tasks to check.",
                             hint="label some tasks in Label Studio, sync, and run the quality check again")
    if arr.dtype.kind == "f":
        if np.isnan(arr).any():
            raise DataError(f"{name} contains {int(np.isnan(arr).sum())} NaN values; expected a class index "
                            "for every task.", hint="drop unlabelled tasks before the quality check")
        if not np.all(arr == np.round(arr)):
            raise DataError(f"{name} has non-integer values; expected class indices.",
                            hint="map class names to indices with class_names.index(name)")
    elif arr.dtype.kind not in "iu":
        raise DataError(f"{name} has dtype {arr.dtype}; expected integer class indices into class_names.",
                        hint="map class names to indices with class_names.index(name)")
    out = arr.astype(np.int64)
    bad = (out < 0) | (out >= n_classes)
    if bad.any():
        raise DataError(f"{name} holds {int(out[bad][0])}, outside 0..{n_classes - 1} for {n_classes} classes.",
                        hint="every label must index into class_names")
    if len(np.unique(out)) < 2:
        raise EmptyDataError(f"{name} uses a single class ({int(out[0])}); label quality needs at least two "
                             "classes to compare.", hint="label examples of at least two classes first")
    return out


def make_folds(labels: npt.NDArray[np.int64], *, folds: int, seed: int, class_names: Sequence[str] | None = None
               ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[str]]:
    """Stratified, seeded folds; fewer folds (>= 2) when the rarest class is smaller than `folds`. Warnings name
    the classes by class_names where given, else by index."""
    from sklearn.model_selection import StratifiedKFold

    warnings: list[str] = []
    counts = np.bincount(labels)
    present = counts[counts > 0]
    used = int(max(2, min(folds, present.min())))
    if used < folds:
        warnings.append(f"The smallest class has {int(present.min())} example(s), fewer than folds={folds}; "
                        f"cross-validation used {used} folds instead.")
    tiny = np.flatnonzero((counts > 0) & (counts < used))
    if len(tiny):
        named = ", ".join(repr(class_names[k]) if class_names is not None else str(k) for k in tiny[:10])
        warnings.append(f"{len(tiny)} class(es) have fewer than {used} examples ({named}{' ...' * (len(tiny) > 10)}); "
                        "some of their examples are scored by a model that never saw their class and may be "
                        "flagged only for that reason. Label more examples of them.")
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")  # sklearn's own "least populated class" warning: reported above
        splitter = StratifiedKFold(n_splits=used, shuffle=True, random_state=seed)
        return [(tr, te) for tr, te in splitter.split(np.zeros(len(labels)), labels)], warnings


def exclude_from_training(fold_list: list[tuple[np.ndarray, np.ndarray]], y: np.ndarray, exclude: npt.ArrayLike
                          ) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """(folds whose training rows leave out the excluded ones, the (N,) bool mask). Excluded rows stay in the
    test folds, so they are still scored. Raises DataError (not one flag per label) or EmptyDataError (fewer
    than two classes left to learn from)."""
    excluded = np.asarray(exclude, dtype=bool)
    if excluded.shape != y.shape:
        raise DataError(f"exclude has shape {excluded.shape}; expected {y.shape}, one flag per label.",
                        hint="pass a boolean mask over exactly these tasks")
    if len(np.unique(y[~excluded])) < 2:
        raise EmptyDataError(f"Only {len(np.unique(y[~excluded]))} class(es) remain after excluding "
                             f"{int(excluded.sum())} of {len(y)} labels; a model needs at least two.",
                             hint="exclude fewer tasks")
    return [(train[~excluded[train]], test) for train, test in fold_list], excluded


def out_of_sample_pred_probs(
    texts: Sequence[str],
    labels: npt.ArrayLike,
    *,
    n_classes: int,
    embeddings: Embeddings | None = None,
    candidates: Sequence[str] = ("embedding_lr", "embedding_knn", "tfidf_nb", "ensemble"),
    folds: int = 5,
    seed: int = 0,
    lr_c: float = 1.0,
    lr_max_iter: int = 100,
    knn_k: int = 20,
    knn: KnnGraph | None = None,
    external: PredProbs | None = None,
    exclude: npt.ArrayLike | None = None,
    progress: ProgressFn | None = None,
    class_names: Sequence[str] | None = None,
) -> ProbabilityResult:
    """Out-of-sample (N, K) pred_probs from the candidate with the lowest cross-validated log-loss (or the
    ensemble, when no single candidate is clearly better: `choose_model`).

    texts: N strings; labels: (N,) class indices in [0, n_classes); embeddings: (N, D), needed by the
    embedding candidates; knn: a precomputed graph to reuse; external: an (N, K) out-of-sample matrix from
    elsewhere (e.g. a LoRA run), compared as candidate "external" and averaged into "ensemble";
    exclude: (N,) bool, rows that are scored but that no candidate learns from (labels believed wrong);
    class_names: to name classes in the warnings. Raises EmptyDataError (no labels, one class, fewer than two
    classes left to learn from) or DataError (mismatched lengths, bad values).
    """
    y = validate_labels(labels, n_classes, n_rows=len(texts))
    unknown = [c for c in candidates if c not in CANDIDATES]
    if unknown or not candidates:
        raise DataError(f"candidates = {list(candidates)!r} is not a non-empty list of known models.",
                        hint=f"choose from {sorted(CANDIDATES)}")
    if embeddings is not None and len(embeddings) != len(y):
        raise DataError(f"embeddings has {len(embeddings)} rows but there are {len(y)} labels; expected one "
                        "row per text.", hint="encode exactly the texts being checked, in the same order")
    if external is not None:
        external = np.asarray(external, dtype=float)
        if external.shape != (len(y), n_classes):
            raise DataError(f"external pred_probs has shape {external.shape}; expected {(len(y), n_classes)}.",
                            hint="pass out-of-sample probabilities for exactly these tasks and classes")
    fold_list, warnings = make_folds(y, folds=folds, seed=seed, class_names=class_names)
    excluded = None
    if exclude is not None:
        fold_list, excluded = exclude_from_training(fold_list, y, exclude)
    base = [c for c in candidates if c not in COMBINERS]
    total = sum(len(fold_list) if c.endswith("_lr") else 1 for c in base)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    inputs = ProbabilityInputs(texts=texts, labels=y, n_classes=n_classes, embeddings=embeddings,
                               folds=fold_list, seed=seed, lr_c=lr_c, lr_max_iter=lr_max_iter, knn_k=knn_k,
                               knn=knn, tick=tick, excluded=excluded)
    probs: dict[str, PredProbs] = {name: _normalise(CANDIDATES[name](inputs)) for name in base}
    if external is not None:
        probs["external"] = _normalise(external)
    if "ensemble" in candidates:
        if len(probs) >= 2:
            probs["ensemble"] = np.mean(list(probs.values()), axis=0)
        else:
            warnings.append("'ensemble' needs at least two other candidates; it was skipped.")
    scores = {name: log_loss(y, p) for name, p in probs.items()}
    best = choose_model(y, probs)
    return ProbabilityResult(pred_probs=probs[best], model=best, log_loss=scores, candidate_probs=probs,
                             folds=len(fold_list), warnings=warnings)


def _normalise(p: np.ndarray) -> PredProbs:
    p = np.clip(np.asarray(p, dtype=float), _EPS, None)
    return p / p.sum(axis=1, keepdims=True)
