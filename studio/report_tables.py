"""A stored report: named tables as parquet files plus meta.json, in one folder (the quality reports of every
task kind, under the project's quality/<snapshot id>/).

Every table is written through a temporary file, and meta.json last, so a reader never sees half a report:
`load_tables` reads nothing until meta.json exists. Cells holding lists, tuples, dicts or arrays are stored as
JSON text (parquet cannot hold mixed nested values) and read back for the columns the caller names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from studio.atomic import atomic_path, write_json_atomic

_NESTED = (list, dict, tuple, np.ndarray)


def json_default(value: Any) -> Any:
    """What json.dumps cannot write itself: numpy arrays and scalars as lists and numbers, anything else as text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def save_tables(folder: Path, tables: Mapping[str, pd.DataFrame], meta: Mapping[str, Any]) -> None:
    """Write each table as <name>.parquet, then meta.json."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        frame = table.copy()
        frame.columns = [str(c) for c in frame.columns]
        for col in frame.columns:
            if frame[col].dtype == object:
                frame[col] = frame[col].map(
                    lambda v: json.dumps(v, default=json_default) if isinstance(v, _NESTED) else v)
        with atomic_path(folder / f"{name}.parquet") as tmp:
            frame.to_parquet(tmp)
    write_json_atomic(folder / "meta.json", dict(meta))


def read_meta(folder: Path) -> dict[str, Any] | None:
    """The report's meta.json, or None when there is no complete report in `folder`."""
    file = folder / "meta.json"
    return json.loads(file.read_text()) if file.exists() else None


def load_tables(folder: Path, names: Sequence[str], *, json_columns: Sequence[str] = ()) -> dict[str, pd.DataFrame]:
    """The named tables of a saved report, with the JSON text of `json_columns` read back into values."""
    tables = {}
    for name in names:
        frame = pd.read_parquet(folder / f"{name}.parquet")
        for col in json_columns:
            if col in frame.columns:
                frame[col] = frame[col].map(lambda v: json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v)
        tables[name] = frame
    return tables
