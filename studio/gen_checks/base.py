"""The contract of a generation-quality check, its inputs, its registry and the issue table it returns.

A generation task is a prompt answered by one or more experts, each with a free-text response. Checks read a
`GenerationContext` (the responses, one row per (task, annotator); the tasks, one row per prompt; embeddings on
demand) and return rows of one long issue table:

    task_id    object  the Label Studio task id
    annotator  str     whose response the row is about; "" for a row about the task (its prompt, its group)
    check      str     the issue's name (a check's `name`, or one of its `produces`)
    score      float   in [0, 1]; HIGHER = worse (0.5 = at the check's threshold where it has one)
    field      str     what the row is about: "prompt", "response", "pair" (prompt + response) or "task"
    detail     str     one human-readable line
    related    tuple   other task ids the row refers to (the duplicate group, the conflicting task), else ()

Only flagged rows are returned: a clean data set yields an empty table. Note the direction: the classification
checks in studio/checks/ score lower = worse; here higher = worse, as a severity.

Adding a check = a `GenerationCheck` subclass decorated with `@register_generation_check`, imported in
`studio/gen_checks/__init__.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from studio.checks.neighbours import KnnGraph, knn_graph
from studio.config import ConfigSection, require
from studio.errors import ConfigError, DataError, did_you_mean

#: embed(texts) -> (len(texts), D) float array, rows L2-normalised (studio.embeddings.encode with its cache).
EmbedFn = Callable[[Sequence[str]], np.ndarray]

INPUT_COLUMNS: tuple[str, ...] = ("task_id", "prompt", "response", "annotator")
ISSUE_COLUMNS: list[str] = ["task_id", "annotator", "check", "score", "field", "detail", "related"]

#: Personal-data kinds `find_personal_data` knows (studio/gen_checks/pii.py).
PII_KINDS: tuple[str, ...] = ("email", "phone", "payment_card", "iban", "account_number")
DATALAB_ISSUE_TYPES: tuple[str, ...] = ("near_duplicate", "outlier", "non_iid")


@dataclass
class GenerationQualityConfig(ConfigSection):
    """[genquality]: the thresholds of the generation checks. The defaults were set by reading flagged
    examples of customer_support_sft (studio/generation_quality.py's docstring has the figures).

    near_duplicate_threshold: prompt cosine similarity that links two prompts into one near-duplicate group.
    knn_k: neighbours per prompt in the neighbour search (near-duplicate links are looked for among them).
    conflict_similarity: two near-duplicate prompts' responses "conflict" below this cosine similarity.
    length_z: |robust z| of log word count above which a prompt or response is too short / too long;
    length_ratio: and only when (words + 1) is at most 1/ratio or at least ratio times the median's (a tight
      distribution makes a small robust scale; a 40-word answer among 110-word ones is not "too short").
    unrelated_z: robust z (below the median) of prompt-response relatedness at which a response is unrelated.
    unrelated_floor: relatedness (standard deviations above a random response of this data set; 0 = random)
      below which, in every view, a response is unrelated however wide the spread of the rest (small data sets).
    unrelated_background: how many other responses each prompt is compared with to measure relatedness.
    unrelated_max_relatedness: a response at least this many background standard deviations closer to its
      prompt than the other responses are, in either view, is never called unrelated (guards a clean data set).
    unrelated_lexical: add a character n-gram TF-IDF view of relatedness to the embedding one (typo-robust).
    disagreement_similarity: experts who answered one prompt disagree below this mean pairwise cosine similarity.
    min_rows: robust statistics (lengths, relatedness, Datalab) are computed only on at least this many values.
    pii_kinds: the personal-data kinds to look for; pii_skip_role_emails: ignore role mailboxes (support@...).
    datalab_issue_types: the label-free cleanlab Datalab issue types run on the prompt embeddings.
    seed: the background sample of the relatedness check.
    """

    SECTION = "genquality"  # no underscore: STUDIO_<SECTION>_<FIELD> splits at the first one
    near_duplicate_threshold: float = 0.95
    knn_k: int = 10
    conflict_similarity: float = 0.6
    length_z: float = 3.5
    unrelated_z: float = 3.5
    unrelated_background: int = 2000
    unrelated_floor: float = 0.5
    unrelated_max_relatedness: float = 2.0
    unrelated_lexical: bool = True
    length_ratio: float = 4.0
    disagreement_similarity: float = 0.6
    min_rows: int = 20
    pii_kinds: list[str] = field(default_factory=lambda: list(PII_KINDS))
    pii_skip_role_emails: bool = True
    datalab_issue_types: list[str] = field(default_factory=lambda: list(DATALAB_ISSUE_TYPES))
    seed: int = 0

    def __post_init__(self) -> None:
        s = self.SECTION
        require(0 < self.near_duplicate_threshold <= 1, s, "near_duplicate_threshold", self.near_duplicate_threshold,
                "a cosine similarity in (0, 1], e.g. 0.95")
        require(self.knn_k >= 1, s, "knn_k", self.knn_k, "an integer >= 1, e.g. 10")
        require(-1 <= self.conflict_similarity <= 1, s, "conflict_similarity", self.conflict_similarity,
                "a cosine similarity in [-1, 1], e.g. 0.6")
        require(self.length_z > 0, s, "length_z", self.length_z, "a positive robust z-score, e.g. 3.5")
        require(self.unrelated_z > 0, s, "unrelated_z", self.unrelated_z, "a positive robust z-score, e.g. 3.5")
        require(self.length_ratio >= 1, s, "length_ratio", self.length_ratio, "a factor >= 1, e.g. 4 (1 = off)")
        require(self.unrelated_floor < self.unrelated_max_relatedness, s, "unrelated_floor", self.unrelated_floor,
                f"a relatedness below unrelated_max_relatedness ({self.unrelated_max_relatedness})")
        require(self.unrelated_background >= 10, s, "unrelated_background", self.unrelated_background,
                "an integer >= 10, e.g. 2000")
        require(-1 <= self.disagreement_similarity <= 1, s, "disagreement_similarity", self.disagreement_similarity,
                "a cosine similarity in [-1, 1], e.g. 0.6")
        require(self.min_rows >= 3, s, "min_rows", self.min_rows, "an integer >= 3, e.g. 20")
        require(all(k in PII_KINDS for k in self.pii_kinds), s, "pii_kinds", self.pii_kinds,
                f"a list from {list(PII_KINDS)}")
        require(all(t in DATALAB_ISSUE_TYPES for t in self.datalab_issue_types), s, "datalab_issue_types",
                self.datalab_issue_types, f"a list from {list(DATALAB_ISSUE_TYPES)}")


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


@dataclass
class GenerationContext:
    """Inputs shared by all checks; the embeddings and the prompt neighbour graph are computed on first use, so
    a run of only the text checks (lengths, personal data) never calls `embed`.

    responses: (N rows) task_id, prompt, response, annotator, all str but task_id; index 0..N-1.
    tasks: (T rows) task_id, prompt: one row per task in first-seen order; index 0..T-1.
    task_row: (N,) int, the row of `tasks` each response belongs to.
    info: each check records the thresholds it used (and data-derived figures) under its name.
    cache: intermediate results shared by checks (e.g. the duplicate groups), keyed by their module.
    """

    responses: pd.DataFrame
    tasks: pd.DataFrame
    task_row: npt.NDArray[np.int64]
    embed: EmbedFn | None
    config: GenerationQualityConfig
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    def _embed(self, texts: Sequence[str], what: str) -> np.ndarray:
        if self.embed is None:
            raise ConfigError(f"a selected check needs {what} embeddings but no `embed` function was given.",
                              hint="pass embed=lambda texts: encode(texts, cache_dir=...), or select only the "
                                   "text checks (length_outlier, personal_data)")
        unique, inverse = np.unique(np.asarray(texts, dtype=object).astype(str), return_inverse=True)
        vectors = np.asarray(self.embed(list(unique)))
        if vectors.ndim != 2 or vectors.shape[0] != len(unique):
            raise DataError(f"embed returned shape {vectors.shape} for {len(unique)} {what} texts; expected "
                            f"({len(unique)}, D), one row per text.", hint="return one vector per input text, in order")
        return _normalised(vectors)[inverse.reshape(-1)]

    @cached_property
    def prompt_embeddings(self) -> np.ndarray:
        """(T, D) float32 unit vectors of the tasks' prompts."""
        return self._embed(self.tasks["prompt"].tolist(), "prompt")

    @cached_property
    def response_embeddings(self) -> np.ndarray:
        """(N, D) float32 unit vectors of the responses."""
        return self._embed(self.responses["response"].tolist(), "response")

    @cached_property
    def task_response_embeddings(self) -> np.ndarray:
        """(T, D) unit vectors: the mean of each task's response embeddings (its experts' answers together)."""
        r = self.response_embeddings
        out = np.zeros((self.n_tasks, r.shape[1]), dtype=np.float64)
        np.add.at(out, self.task_row, r)
        return _normalised(out)

    @cached_property
    def prompt_knn(self) -> KnnGraph:
        """Exact cosine kNN graph of the prompt embeddings, computed in blocks (never a dense T x T matrix)."""
        x = self.prompt_embeddings
        chunk = int(max(16, min(1024, 25_000_000 // max(len(x), 1))))  # <= ~100 MB of similarities per block
        return knn_graph(x, k=self.config.knn_k, chunk_size=chunk)


@dataclass
class CheckResult:
    """issues: ISSUE_COLUMNS rows (use `issue_frame`); info: thresholds used and figures for the report page."""

    issues: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


class GenerationCheck(ABC):
    """One kind of issue on generation data. Subclasses set `name`, `description`, `needs_embeddings` and
    `produces` (the `check` values its rows carry; default: just `name`) and implement `run`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs_embeddings: ClassVar[bool] = True
    produces: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def issue_names(cls) -> tuple[str, ...]:
        return cls.produces or (cls.name,)

    @abstractmethod
    def run(self, ctx: GenerationContext) -> CheckResult:
        """Return the flagged rows (ISSUE_COLUMNS, higher score = worse) and the thresholds used."""


GENERATION_CHECKS: dict[str, type[GenerationCheck]] = {}


def register_generation_check(cls: type[GenerationCheck]) -> type[GenerationCheck]:
    """Class decorator: make a check selectable by its `name`."""
    if not cls.name:
        raise ConfigError(f"check class {cls.__name__} has an empty name.", hint="set `name = '...'` on it")
    GENERATION_CHECKS[cls.name] = cls
    return cls


def available_generation_checks() -> dict[str, str]:
    """name -> description of every registered generation check, in registration order (for the UI and CLI)."""
    return {name: cls.description for name, cls in GENERATION_CHECKS.items()}


def get_generation_check(name: str) -> GenerationCheck:
    """Instantiate a registered check by name; unknown names raise ConfigError with the known ones."""
    if name not in GENERATION_CHECKS:
        raise ConfigError(f"generation check {name!r} does not exist.{did_you_mean(name, GENERATION_CHECKS)}",
                          hint=f"choose from: {', '.join(GENERATION_CHECKS)}")
    return GENERATION_CHECKS[name]()


def empty_issues() -> pd.DataFrame:
    """The issue table with no rows but the stable columns and dtypes."""
    return pd.DataFrame({"task_id": pd.Series(dtype=object), "annotator": pd.Series(dtype=object),
                         "check": pd.Series(dtype=object), "score": pd.Series(dtype=float),
                         "field": pd.Series(dtype=object), "detail": pd.Series(dtype=object),
                         "related": pd.Series(dtype=object)})


def issue_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Build the issue table from dicts with ISSUE_COLUMNS keys (annotator, field, related may be left out)."""
    if not rows:
        return empty_issues()
    frame = pd.DataFrame([{"annotator": "", "field": "task", "related": (), **row} for row in rows])
    frame["score"] = np.clip(frame["score"].astype(float), 0.0, 1.0)
    frame["related"] = [tuple(r) for r in frame["related"]]
    frame["task_id"] = frame["task_id"].astype(object)
    return frame[ISSUE_COLUMNS]


def severity(excess: npt.ArrayLike) -> np.ndarray:
    """Map "how far past the threshold" (0 = at it, in the check's own units) to a score in (0, 1): 0.5 at the
    threshold, rising smoothly towards 1 (a logistic), so scores of one check rank its rows."""
    return 1.0 / (1.0 + np.exp(-np.asarray(excess, dtype=float)))


def short(text: str, limit: int = 80) -> str:
    """One line of at most `limit` characters, for a detail message."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"
