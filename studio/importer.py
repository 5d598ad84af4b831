"""Import a data file into Label Studio tasks: CSV, JSONL, parquet or a saved Hugging Face dataset.

`read_table` reads and checks the file; `build_tasks` turns rows into Label Studio task dicts, with an optional
label column imported as annotations (a person's labels) or as predictions (a model's). Both are pure once
the table is read; the client does the bulk upload in batches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from studio.errors import DataError, EmptyDataError
from studio.labeling import LabelingSchema
from studio.tasks.base import UnknownLabels

LabelsAs = Literal["annotations", "predictions"]
SUFFIXES = {".csv": "CSV", ".jsonl": "JSONL", ".json": "JSONL", ".parquet": "parquet"}


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table; a folder is taken as a Hugging Face `save_to_disk` dataset (all splits concatenated)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"Import file {path} does not exist.", hint="check the path")
    try:
        if path.is_dir():
            return _read_hf(path)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return pd.read_csv(path, encoding="utf-8", keep_default_na=False, dtype=str)
        if suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=True, encoding="utf-8", dtype=False)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}).",
                        hint="re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path} could not be read as {SUFFIXES.get(path.suffix.lower(), 'a table')}: {exc}",
                        hint="check the file's format; JSONL needs one JSON object per line") from None
    raise DataError(f"{path} has suffix '{path.suffix}', which the importer does not read.",
                    hint=f"use one of {', '.join(SUFFIXES)} or a folder saved with datasets' save_to_disk")


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
    for number, row in enumerate(table.to_dict(orient="records"), start=1):
        data = {k: _jsonable(v) for k, v in row.items() if k not in (text_column, label_column)}
        text = "" if row[text_column] is None else str(row[text_column])
        data[schema.text_field] = text
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


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        value = value.tolist()
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)
