"""Out-of-sample predicted probabilities: the input every label-quality method needs.

Each candidate model gives an (N, K) matrix in which row i comes from a model that never saw example i
(K-fold cross-validation, or leave-one-out for the kNN vote). The ensemble (their average) is used when it is
configured; only a fine-tuned model's probabilities ("external") replace it, when clearly better by log-loss
(`choose_model`). Every candidate's log-loss and accuracy against the given labels is reported
(`choice_figures`) so the choice can be audited.

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
from studio.model_choice import ENSEMBLE_MARGIN_SE, choice_figures, choose_model, log_loss  # noqa: F401 - re-exported
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
    tfidf_c: float = 10.0
    text_knn: KnnGraph | None = None
    #: Label-free features (TF-IDF matrices) by name, shared across calls on the same texts (a refit round).
    features: dict = field(default_factory=dict)

    def feature(self, name: str, make: Callable[[], object]) -> object:
        if name not in self.features:
            self.features[name] = make()
        return self.features[name]


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


@register_candidate("tfidf_lr")
def _tfidf_lr(inp: ProbabilityInputs) -> PredProbs:
    """Logistic regression (saga) on TF-IDF word 1-2-grams + character 2-5-grams: sees every word of a long
    document and the spelling the encoder blurs, needs no embeddings (studio/sparse_model.py)."""
    from studio.sparse_model import cross_val_sparse_lr, tfidf_features

    features = inp.feature("words+chars", lambda: tfidf_features(inp.texts))
    return cross_val_sparse_lr(features, inp.labels, inp.n_classes, inp.folds, c=inp.tfidf_c,
                               seed=inp.seed, tick=inp.tick)


@register_candidate("tfidf_nb")
def _tfidf_nb(inp: ProbabilityInputs) -> PredProbs:
    """Multinomial naive Bayes on TF-IDF word 1-2-grams: a second, independent view of the text in about a
    second (the logistic regression on TF-IDF, `tfidf_lr`, takes a minute on 10,000 texts).

    The embeddings place a mislabeled example next to the class it was confused with; the words it uses do not
    move, so averaging this view into the ensemble flags more of such errors (bench/quality.py).
    """
    from sklearn.naive_bayes import MultinomialNB

    from studio.sparse_model import tfidf_features

    features = inp.feature("words", lambda: tfidf_features(inp.texts, chars=False))
    out = np.zeros((len(inp.labels), inp.n_classes))
    for train, test in inp.folds:
        model = MultinomialNB(alpha=0.1).fit(features[train], inp.labels[train])
        out[np.ix_(test, model.classes_)] = model.predict_proba(features[test])
    inp.tick()
    return out


def _knn_vote(graph: KnnGraph, inp: ProbabilityInputs) -> PredProbs:
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
    return _knn_vote(graph, inp)


@register_candidate("tfidf_knn")
def _tfidf_knn(inp: ProbabilityInputs) -> PredProbs:
    """The same leave-one-out neighbour vote, neighbours by TF-IDF cosine of the texts' own words (headers and
    quotes stripped, studio/boilerplate.py): the local view for long documents, which need no encoder."""
    graph = inp.text_knn
    if graph is None or graph.k < inp.knn_k:
        from studio.sparse_model import text_vectors

        graph = knn_graph(text_vectors(inp.texts), k=inp.knn_k)
    return _knn_vote(graph, inp)


@register_candidate("ensemble")
def _ensemble(inp: ProbabilityInputs) -> PredProbs:  # pragma: no cover - computed in out_of_sample_pred_probs
    raise NotImplementedError("'ensemble' is the mean of the other candidates")


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
    tfidf_c: float = 10.0,
    knn: KnnGraph | None = None,
    text_knn: KnnGraph | None = None,
    feature_cache: dict | None = None,
    external: PredProbs | None = None,
    exclude: npt.ArrayLike | None = None,
    progress: ProgressFn | None = None,
    class_names: Sequence[str] | None = None,
) -> ProbabilityResult:
    """Out-of-sample (N, K) pred_probs of the ensemble of the candidates, or of the one `choose_model` picks.

    texts: N strings; labels: (N,) class indices in [0, n_classes); embeddings: (N, D), needed by the
    embedding candidates; knn: a precomputed graph of the embeddings to reuse; text_knn: the same of the TF-IDF
    rows (studio.sparse_model.text_vectors), for `tfidf_knn`; feature_cache: a dict kept between calls on the
    same texts, where the TF-IDF matrices are stored and reused (they use no labels); external: an (N, K)
    out-of-sample matrix from elsewhere (e.g. a LoRA run), compared as candidate "external" and averaged into
    "ensemble";
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
                               knn=knn, tick=tick, excluded=excluded, tfidf_c=tfidf_c,
                               text_knn=text_knn, features={} if feature_cache is None else feature_cache)
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
