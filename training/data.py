"""The curated data set training reads: a folder written by studio/curate.py, or DataFrames in memory.

Folder layout: manifest.json + train.parquet, validation.parquet, test.parquet (validation/test may be empty).
Columns: task_id (int), text (str), and `label` (int index into class_names) for single-label or `labels`
(list of K 0/1 floats) for multi-label. A spans (NER) data set has instead `tokens` (list[str], the words of
`studio.spans.word_offsets(text)`), `ner_tags` (list[int], one id per token into tag_names =
`bio_tag_names(class_names)`) and `spans` (the character spans they came from). A generation (instruction ->
response) data set has `prompt` (str, = text), `completion` (str, the expert's answer), `messages` (the chat:
an optional system turn, the user's prompt, the assistant's answer) and `group` (str, e.g. the intent; "" when
the data has none), and no classes. manifest.json's "task" names the kind. This module only reads that layout;
it never writes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from studio.errors import DataError, EmptyDataError, did_you_mean
from studio.spans import bio_tag_names, word_offsets
from training.objective import Objective, objective_for, task_of

SPLITS = ("train", "validation", "test")
#: The task kinds training knows (studio/labeling.py's kinds; "spans" is named entity recognition,
#: "generation" supervised fine-tuning of a causal LM: training/sft.py).
TASKS = ("single_label", "multi_label", "spans", "generation")
#: The columns every split of a generation data set has (besides task_id).
GENERATION_COLUMNS = ("text", "prompt", "completion", "messages", "group")


@dataclass
class CuratedData:
    """Train/validation/test frames plus the label space they index into.

    task: one of TASKS; a classification task's `objective` (training/objective.py) says what its targets
    are. tag_names (spans only): BIO tag names, bio_tag_names(class_names) when not given.
    """

    train: pd.DataFrame
    class_names: list[str]
    validation: pd.DataFrame = field(default_factory=pd.DataFrame)
    test: pd.DataFrame = field(default_factory=pd.DataFrame)
    class_weights: list[float] | None = None
    version_id: str = "inmemory"
    snapshot_id: str = ""
    task: str = "single_label"
    tag_names: list[str] | None = None
    #: the manifest's test_set ({"hash", "tasks"}): which test tasks the scores are measured on.
    test_set: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(f"task = {self.task!r}: training knows the task kinds {', '.join(TASKS)}."
                            + did_you_mean(self.task, TASKS),
                            hint="the curated manifest's 'task' comes from the labeling config")
        if self.task == "spans" and self.tag_names is None:
            self.tag_names = bio_tag_names(self.class_names)

    def split(self, name: str) -> pd.DataFrame:
        return getattr(self, name)

    def counts(self) -> dict[str, int]:
        return {name: int(len(self.split(name))) for name in SPLITS}

    @property
    def objective(self) -> Objective:
        """The classification objective (refused for spans and generation, which have their own trainers)."""
        return objective_for(self.task)

    def targets(self, name: str) -> np.ndarray:
        """The objective's targets: (N,) int64 class indices for single-label; (N, K) float32 0/1 for
        multi-label."""
        return self.objective.targets(self.split(name), len(self.class_names))

    def texts(self, name: str) -> list[str]:
        frame = self.split(name)
        return [str(t) for t in frame["text"]] if len(frame) else []

    def tokens(self, name: str) -> list[list[str]]:
        """Spans: each row's words (word_offsets of its text)."""
        frame = self.split(name)
        return [[str(w) for w in row] for row in frame["tokens"]] if len(frame) else []

    def ner_tags(self, name: str) -> list[list[int]]:
        """Spans: each row's (W,) tag ids into tag_names, one per word."""
        frame = self.split(name)
        return [[int(t) for t in row] for row in frame["ner_tags"]] if len(frame) else []

    def messages(self, name: str) -> list[list[dict[str, str]]]:
        """Generation: each row's chat as plain dicts [{"role", "content"}, ...], the assistant's answer last.

        Parquet gives a numpy array of dicts per row; a row without `messages` gets [user prompt, assistant
        completion]."""
        frame = self.split(name)
        if not len(frame):
            return []
        if "messages" not in frame.columns:
            return [[{"role": "user", "content": str(p)}, {"role": "assistant", "content": str(c)}]
                    for p, c in zip(frame["prompt"], frame["completion"])]
        return [[{"role": str(m["role"]), "content": str(m["content"])} for m in row] for row in frame["messages"]]

    def column(self, name: str, column: str) -> list[str]:
        """One string column of a split ("" for missing values; [] for an empty split or a missing column)."""
        frame = self.split(name)
        if not len(frame) or column not in frame.columns:
            return []
        return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in frame[column]]


def load_curated(folder: str | Path) -> CuratedData:
    """Read a curated data set folder (manifest.json + three parquet splits) and validate it."""
    root = Path(folder)
    manifest_file = root / "manifest.json"
    if not manifest_file.exists():
        raise DataError(f"Curated data folder {root} has no manifest.json.",
                        hint="pick a folder written by the Curate step (studio/curate.py)")
    manifest: dict[str, Any] = json.loads(manifest_file.read_text(encoding="utf-8"))
    frames: dict[str, pd.DataFrame] = {}
    for name in SPLITS:
        file = root / f"{name}.parquet"
        if file.exists():
            frames[name] = pd.read_parquet(file)
        elif name == "train":
            raise DataError(f"Curated data folder {root} has no train.parquet.",
                            hint="re-run the Curate step; it writes train/validation/test.parquet")
        else:
            frames[name] = pd.DataFrame()
    for key in ("class_names", "version_id"):
        if key not in manifest:
            raise DataError(f"{manifest_file} has no '{key}'.", hint="re-run the Curate step to rewrite it")
    task = task_of(manifest)
    task = "spans" if task == "ner" else task  # studio/labeling.py's name for the same kind
    tag_names = manifest.get("tag_names")
    data = CuratedData(
        train=frames["train"], validation=frames["validation"], test=frames["test"],
        class_names=[str(c) for c in manifest["class_names"]],
        class_weights=manifest.get("class_weights"),
        version_id=str(manifest["version_id"]), snapshot_id=str(manifest.get("snapshot_id", "")),
        task=str(task), tag_names=[str(t) for t in tag_names] if tag_names is not None else None,
        test_set=dict(manifest.get("test_set") or {}),
    )
    validate_curated(data)
    return data


def validate_curated(data: CuratedData) -> None:
    """Raise EmptyDataError / DataError, naming the split and column, before any model is loaded."""
    if data.task == "spans":
        _validate_spans(data)
        return
    if data.task == "generation":
        _validate_generation(data)
        return
    k = len(data.class_names)
    if k < 2:
        raise EmptyDataError(f"class_names = {data.class_names!r}: training needs at least 2 classes.",
                             hint="label examples of at least two classes before training")
    if data.class_weights is not None and (len(data.class_weights) != k
                                           or any(float(w) <= 0 for w in data.class_weights)):
        raise DataError(f"class_weights = {data.class_weights!r}: expected {k} positive numbers (one per class).",
                        hint="re-run the Curate step, or drop class_weights from the manifest")
    objective = data.objective
    target = objective.target_column
    for name in SPLITS:
        frame = data.split(name)
        if len(frame) == 0:
            continue
        for column in ("text", target):
            if column not in frame.columns:
                raise DataError(f"The {name} split has no '{column}' column (columns: {list(frame.columns)}).",
                                hint=f"a {objective.title} data set needs 'text' and '{target}'")
        if frame["text"].isna().any():
            raise DataError(f"The {name} split has {int(frame['text'].isna().sum())} rows with no text.",
                            hint="drop or fill the empty texts in the Curate step")
        try:
            y = data.targets(name)
        except (TypeError, ValueError):
            example = frame[target].iloc[0]
            raise DataError(f"The {name} split's '{target}' column holds {example!r}, expected {objective.cell}.",
                            hint="write label indices (class_names order), not class names, in the Curate step"
                            ) from None
        objective.check_targets(y, k, name)
    if len(data.train) == 0:
        raise EmptyDataError("The train split has 0 rows: there is nothing to train on.",
                             hint="label some tasks (or relax the Curate filters) and curate again")
    y = data.targets("train")
    present = objective.classes_present(y)
    if present < 2:
        raise EmptyDataError(f"The train split has examples of only {present} class(es) "
                             f"(of {k}: {data.class_names[:5]}...); a classifier needs at least 2.",
                             hint="label examples of at least two classes and curate again")


def _row(frame: pd.DataFrame, i: int) -> str:
    task_id = f", task_id {frame['task_id'].iloc[i]}" if "task_id" in frame.columns else ""
    return f"row {i}{task_id}"


def _validate_spans(data: CuratedData) -> None:
    """The spans (NER) layout: tokens and ner_tags per row, of equal length, tags in range, words = word_offsets."""
    types, tags = data.class_names, data.tag_names or []
    if len(types) < 1:
        raise EmptyDataError(f"class_names = {types!r}: a spans data set needs at least 1 entity type.",
                             hint="add <Label> values to the <Labels> tag of the labeling config")
    if list(tags) != bio_tag_names(types):
        raise DataError(f"tag_names = {list(tags)!r} do not match the entity types {types!r}; expected "
                        f"{bio_tag_names(types)!r}.",
                        hint="re-export the data set: tag_names must be studio.spans.bio_tag_names(class_names)")
    n_tags = len(tags)
    for name in SPLITS:
        frame = data.split(name)
        if len(frame) == 0:
            continue
        for column in ("text", "tokens", "ner_tags"):
            if column not in frame.columns:
                raise DataError(f"The {name} split has no '{column}' column (columns: {list(frame.columns)}).",
                                hint="a spans data set needs 'text', 'tokens' and 'ner_tags'; re-export it")
        if frame["text"].isna().any():
            raise DataError(f"The {name} split has {int(frame['text'].isna().sum())} rows with no text.",
                            hint="drop or fill the empty texts before exporting")
        for i, (text, words, ids) in enumerate(zip(frame["text"], frame["tokens"], frame["ner_tags"])):
            words = [str(w) for w in words]  # parquet gives numpy arrays; plain values read better in messages
            try:
                ids = [int(t) for t in ids]
            except (TypeError, ValueError):
                raise DataError(f"The {name} split, {_row(frame, i)}: 'ner_tags' holds {list(ids)[:8]!r}, expected "
                                "integer tag ids.", hint="ner_tags index into the manifest's tag_names") from None
            if len(words) != len(ids):
                raise DataError(f"The {name} split, {_row(frame, i)}: 'ner_tags' has {len(ids)} tags but "
                                f"'tokens' has {len(words)} words; expected one tag per word.",
                                hint="re-export the data set (tags come from studio.spans.spans_to_tags)")
            bad = [t for t in ids if not 0 <= t < n_tags]
            if bad:
                raise DataError(f"The {name} split, {_row(frame, i)}: 'ner_tags' holds {bad[0]!r}, expected an "
                                f"index in [0, {n_tags - 1}] into tag_names.",
                                hint="ner_tags index into the manifest's tag_names")
            expected = [text[a:b] for a, b in word_offsets(str(text))]
            if words != expected:
                raise DataError(f"The {name} split, {_row(frame, i)}: 'tokens' {words[:8]!r}... are not the words of "
                                f"its text ({expected[:8]!r}...).",
                                hint="tokens must be [text[a:b] for a, b in studio.spans.word_offsets(text)]")
    if len(data.train) == 0:
        raise EmptyDataError("The train split has 0 rows: there is nothing to train on.",
                             hint="label some tasks (or relax the Curate filters) and export again")
    if not any(any(int(t) for t in row) for row in data.train["ner_tags"]):
        raise EmptyDataError("The train split has no entity at all (every tag is 'O'): there is nothing to learn.",
                             hint="label some spans before training")


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip()


def _validate_generation(data: CuratedData) -> None:
    """The generation layout: prompt / completion strings, none empty; messages end with the assistant's answer."""
    for name in SPLITS:
        frame = data.split(name)
        if len(frame) == 0:
            continue
        missing = [c for c in ("prompt", "completion") if c not in frame.columns]
        if missing:
            raise DataError(f"The {name} split has no {missing} column(s) (columns: {list(frame.columns)}).",
                            hint="a generation data set needs 'prompt' and 'completion' (and 'messages'); "
                                 "re-export it from the Curate step")
        for column in ("prompt", "completion"):
            empty = [i for i, v in enumerate(frame[column]) if _blank(v)]
            if empty:
                rows = ", ".join(_row(frame, i) for i in empty[:5]) + (f" and {len(empty) - 5} more"
                                                                        if len(empty) > 5 else "")
                raise DataError(f"The {name} split has {len(empty)} row(s) with an empty '{column}': {rows}.",
                                hint="give every prompt an answer (or exclude those tasks in Review) and export again")
        if "messages" in frame.columns:
            for i, chat in enumerate(frame["messages"]):
                turns = list(chat) if chat is not None else []
                roles = [str(t.get("role", "")) if isinstance(t, dict) else "" for t in turns]
                if len(turns) < 2 or roles[-1] != "assistant" or "user" not in roles[:-1]:
                    raise DataError(f"The {name} split, {_row(frame, i)}: 'messages' has roles {roles!r}; expected "
                                    "a user turn and the assistant's answer last (an optional system turn first).",
                                    hint="re-export the data set: messages come from studio.tasks.generation")
    if len(data.train) == 0:
        raise EmptyDataError("The train split has 0 rows: there is nothing to train on.",
                             hint="answer some prompts in Label Studio (or relax the Curate filters) and export again")
