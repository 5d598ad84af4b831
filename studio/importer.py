"""Import a data file into Label Studio tasks: CSV, JSONL, parquet, CoNLL/BIO or a saved Hugging Face dataset.

`read_table` reads and checks the file; `label_column_for` says which column holds the labels (a spans
project takes its `spans` column by default); `build_tasks` turns rows into Label Studio task dicts, with that
column imported as annotations (a person's labels) or as predictions (a model's). All are pure once the table
is read; the client does the bulk upload in batches.

A CoNLL/BIO file (`.conll`, `.bio`, `.iob`; any other name with format="conll") is read into the same table a
JSONL of entities would give: one row per sentence, `text` its tokens joined by single spaces and `spans` its
entities as character spans (studio.span_io.conll_to_records).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from studio.errors import DataError, EmptyDataError, did_you_mean
from studio.labeling import LabelingSchema
from studio.tasks.base import UnknownLabels

LabelsAs = Literal["annotations", "predictions"]
Format = Literal["csv", "jsonl", "parquet", "conll"]
#: file suffix -> the format read_table reads it as; a folder is a saved Hugging Face dataset.
SUFFIXES: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet",
                               ".conll": "conll", ".bio": "conll", ".iob": "conll"}
FORMATS: dict[Format, str] = {"csv": "CSV", "jsonl": "JSONL", "parquet": "parquet", "conll": "CoNLL/BIO"}
#: The column a CoNLL file's entities arrive in, and the label column a spans project imports by default.
SPANS_COLUMN = "spans"
#: Instruction -> response files: the prompt and answer columns taken when none is named (first one found), and
#: the chat column read as [system?, user, assistant] turns.
PROMPT_COLUMNS = ("prompt", "instruction", "question", "input")
RESPONSE_COLUMNS = ("response", "completion", "output", "answer")
MESSAGES_COLUMN = "messages"
#: the task data key holding each imported row's key (see build_tasks), checked before an import.
IMPORT_KEY = "studio_import_key"


def file_format(path: str | Path, format: Format | None = None) -> Format | Literal["hf"]:
    """The format `read_table` reads `path` as: `format` when given, "hf" for a folder, else from the suffix."""
    path = Path(path)
    if format is not None:
        if format not in FORMATS:
            raise DataError(f"Import format {format!r} is not known.{did_you_mean(format, FORMATS)}",
                            hint=f"use one of: {', '.join(FORMATS)}")
        return format
    if path.is_dir():
        return "hf"
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path} has suffix '{path.suffix}', which the importer does not read.",
                        hint=f"use one of {', '.join(SUFFIXES)} or a folder saved with datasets' save_to_disk; "
                             "a CoNLL file with another name: pass format='conll' (studio import --format conll)")
    return SUFFIXES[suffix]


def read_table(path: str | Path, *, format: Format | None = None) -> pd.DataFrame:
    """Read a table; a folder is taken as a Hugging Face `save_to_disk` dataset (all splits concatenated).

    format: read the file as this format whatever its suffix (e.g. "conll" for a `.txt` of token-tag lines).
    A CoNLL/BIO file gives columns text, spans (one row per sentence); a broken line raises DataError naming its
    line number, before anything is returned.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"Import file {path} does not exist.", hint="check the path")
    fmt = file_format(path, format)
    try:
        if fmt == "hf":
            return _read_hf(path)
        if fmt == "conll":
            from studio.span_io import conll_to_records, read_conll

            return pd.DataFrame(conll_to_records(read_conll(path)), columns=["text", SPANS_COLUMN])
        if fmt == "csv":
            return pd.read_csv(path, encoding="utf-8", keep_default_na=False, dtype=str)
        if fmt == "jsonl":
            return _read_jsonl(path)
        return pd.read_parquet(path)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}).",
                        hint="re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    except (ValueError, pd.errors.ParserError) as exc:
        what = FORMATS[fmt] if fmt != "hf" else "a saved Hugging Face dataset"
        raise DataError(f"{path} could not be read as {what}: {exc}",
                        hint="check the file's format; JSONL needs one JSON object per line") from None


def _read_jsonl(path: Path) -> pd.DataFrame:
    """One JSON object per line (blank lines skipped); a line that is not an object is a DataError naming it. A
    key missing from some rows is empty there."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{path}, line {number} is not JSON ({exc}).",
                                hint="JSONL needs one JSON object per line") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {number} is a JSON {type(row).__name__}, not an object "
                                f"({line.strip()[:60]}).", hint='write each row as {"text": ..., ...}')
            rows.append(row)
    return pd.DataFrame(rows)


def label_column_for(table: pd.DataFrame, schema: LabelingSchema, *, requested: str | None = None,
                     source_format: str | None = None) -> str | None:
    """The column `build_tasks` should import as labels, or None for texts only.

    requested: the caller's choice (build_tasks checks that it exists). Without one, a spans project takes the
    `spans` column when the table has it: character spans are labels and nothing else, whereas a classification
    file's label-like column may be stale or a model's, so classification imports labels only when asked.
    source_format: the file's format (file_format); CoNLL/BIO entities are refused for a project of another
    kind, where they would silently ride along as task data.
    """
    kind = schema.kind
    if source_format == "conll" and kind.name != "spans":
        raise DataError(f"A CoNLL/BIO file holds named entities, but this project's labeling config is a "
                        f"{kind.description} project (task kind '{kind.name}').",
                        hint="import it into a project with a <Labels> config (labeling_configs/ner.xml), or give "
                             "this project a CSV/JSONL with a text column")
    if requested:
        return requested
    if kind.name == "spans" and SPANS_COLUMN in table.columns:
        return SPANS_COLUMN
    if kind.name == "generation":  # the answers are what an instruction file is for (drafts: labels_as)
        return next((c for c in RESPONSE_COLUMNS if c in table.columns), None)
    return None


def text_column_for(table: pd.DataFrame, schema: LabelingSchema, *, requested: str = "text") -> str:
    """The column holding the text to label: `requested` when the table has it; for an instruction -> response
    project without it, the first of PROMPT_COLUMNS the table has (else `requested`, which build_tasks refuses
    with the list of columns)."""
    if requested in table.columns or schema.kind.name != "generation":
        return requested
    return next((c for c in PROMPT_COLUMNS if c in table.columns), requested)


def chats_to_pairs(table: pd.DataFrame, *, column: str = MESSAGES_COLUMN, prompt: str = "prompt",
                   response: str = "response", context: str = "system") -> pd.DataFrame:
    """A table with a chat `messages` column (lists of {"role", "content"}) -> the same rows with `prompt`,
    `response` (the assistant's answer; "" when the chat ends with the user) and `context` (a system turn) columns.

    One exchange per row: [system?], user, [assistant]. A chat with several user turns is refused, naming its
    rows: flattening it into one prompt would change what the expert answered."""
    problems: list[str] = []
    prompts, answers, systems = [], [], []
    for number, chat in enumerate(table[column].tolist(), start=1):
        turns = _turns(chat)
        roles = [t["role"] for t in turns or []]
        if turns is None or roles.count("user") != 1 or roles.count("assistant") > 1 \
                or any(r not in ("system", "user", "assistant") for r in roles) \
                or (roles.count("assistant") == 1 and roles[-1] != "assistant"):
            problems.append(f"row {number} ({' > '.join(roles) or 'not a list of turns'})")
            prompts.append(""), answers.append(""), systems.append("")
            continue
        by_role = {t["role"]: t["content"] for t in turns}
        prompts.append(by_role["user"]), answers.append(by_role.get("assistant", "")), systems.append(
            by_role.get("system", ""))
    if problems:
        raise DataError(f"{len(problems)} chat(s) in column '{column}' are not one exchange "
                        f"([system], user, [assistant]): {', '.join(problems[:3])}{' …' if len(problems) > 3 else ''}."
                        " Nothing was imported.",
                        hint="split multi-turn chats into one row per exchange, or import prompt/response columns")
    out = table.drop(columns=[column]).copy()
    out[prompt], out[response] = prompts, answers
    if any(systems):
        out[context] = systems
    return out


def _turns(chat: Any) -> list[dict[str, str]] | None:
    """A messages cell (a list, a numpy array from parquet, or JSON text) -> [{"role", "content"}], or None."""
    if isinstance(chat, str):
        try:
            chat = json.loads(chat)
        except ValueError:
            return None
    if hasattr(chat, "tolist"):
        chat = chat.tolist()
    if not isinstance(chat, list) or not all(isinstance(t, dict) and "role" in t and "content" in t for t in chat):
        return None
    return [{"role": str(t["role"]), "content": "" if t["content"] is None else str(t["content"])} for t in chat]


def _read_hf(path: Path) -> pd.DataFrame:
    from datasets import Dataset, DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(str(path))
    except FileNotFoundError:
        raise DataError(f"{path} is a folder but not a dataset saved with save_to_disk.",
                        hint="pass a CSV/JSONL/parquet file, or a folder written by Dataset.save_to_disk") from None
    if isinstance(loaded, DatasetDict):
        return pd.concat([split.to_pandas() for split in loaded.values()], ignore_index=True)
    assert isinstance(loaded, Dataset)
    return loaded.to_pandas()


def build_tasks(table: pd.DataFrame, schema: LabelingSchema, *, text_column: str = "text",
                label_column: str | None = None, labels_as: LabelsAs = "annotations",
                model_version: str = "import", annotator_email: str | None = None) -> list[dict[str, Any]]:
    """Rows -> Label Studio tasks. The text goes in the config's text field; other columns ride along in
    `data` so nothing in the file is lost. Rows with an empty label get no annotation/prediction.

    Labels must be classes of the config (multi-label: separated by ',' or a list); an unknown label stops
    the import with the list of offending values, before anything is sent.
    """
    if table.empty:
        raise EmptyDataError("The import file has no rows.", hint="check that the file is not empty")
    for column in [text_column] + ([label_column] if label_column else []):
        if column not in table.columns:
            columns = ", ".join(map(str, table.columns))
            raise DataError(f"The import file has no column '{column}'; columns are: {columns}.",
                            hint="pass --text-column / --label-column with one of those names")
    kind = schema.kind
    tasks: list[dict[str, Any]] = []
    problems: list[str] = []
    unknown: set[str] = set()
    occurrences: dict[str, int] = {}
    for number, row in enumerate(table.to_dict(orient="records"), start=1):
        data = {k: _jsonable(v) for k, v in row.items() if k not in (text_column, label_column)}
        text = _text(row[text_column], column=text_column, row=number)
        data[schema.text_field] = text
        # The row's key: a hash of its data and label, and which occurrence of that content in the file it is,
        # so re-running an import (killed midway, or by mistake) skips what is already in the project instead
        # of duplicating it, while the file's own repeated rows stay distinct.
        content = _content_hash(data, row.get(label_column) if label_column else None)
        occurrences[content] = occurrences.get(content, -1) + 1
        data[IMPORT_KEY] = f"{content}-{occurrences[content]}"
        task: dict[str, Any] = {"data": data}
        try:
            target = kind.import_target(row.get(label_column), text, row=number) if label_column else None
        except UnknownLabels as exc:
            unknown.update(exc.labels)
            continue
        except DataError as exc:
            problems.append(str(exc).splitlines()[0])
            continue
        if target is not None:
            result = kind.result(target)
            if labels_as == "annotations":
                entry: dict[str, Any] = {"result": result}
                if annotator_email:
                    entry["completed_by"] = {"email": annotator_email}
                task["annotations"] = [entry]
            else:
                task["predictions"] = [{"result": result, "model_version": model_version}]
        tasks.append(task)
    if unknown:
        raise DataError(f"Labels not in the labeling config: {', '.join(sorted(unknown)[:10])}"
                        f"{' …' if len(unknown) > 10 else ''}.",
                        hint=f"fix the label column or add these classes to the config (it has: "
                             f"{', '.join(schema.classes[:10])}{' …' if len(schema.classes) > 10 else ''})")
    if problems:
        raise DataError(f"{len(problems)} row(s) of the import file have labels the project cannot take, e.g. "
                        f"{'; '.join(problems[:3])}{' …' if len(problems) > 3 else ''}. Nothing was imported.",
                        hint=f"fix the label column; the labeling config has: {', '.join(schema.classes[:10])}"
                             f"{' …' if len(schema.classes) > 10 else ''}")
    return tasks


def _content_hash(data: dict[str, Any], label: Any) -> str:
    content = json.dumps([data, _jsonable(label)], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def not_yet_imported(tasks: list[dict[str, Any]], existing: set[str]) -> list[dict[str, Any]]:
    """The tasks whose IMPORT_KEY is not among the project's (`LabelStudioClient.task_data_values`)."""
    return [t for t in tasks if t["data"].get(IMPORT_KEY) not in existing]


def _text(value: Any, *, column: str, row: int) -> str:
    """A cell of the text column as text: bytes decoded as UTF-8 (not their Python repr), empty cells as ""."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"row {row}: the '{column}' cell holds bytes that are not UTF-8 text.",
                            hint="decode the column to text before importing") from None
    if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)):
        return ""
    return str(value)


def _jsonable(value: Any) -> Any:
    """A cell as JSON task data: arrays as lists, NaN / NaT / None as null, bytes as UTF-8 text, anything else
    JSON cannot hold as its str()."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if not isinstance(value, (list, dict, tuple)) and not hasattr(value, "tolist") and pd.isna(value):
        return None
    if hasattr(value, "tolist"):
        value = value.tolist()
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)
