"""Export a curated, split (and rebalanced) data set as a content-addressed data version on disk.

This is the one function of the curate stage that writes. Layout of `<out_root>/<version_id>/`:

    train.parquet  validation.parquet  test.parquet     task_id, text and the kind's columns: label (int) |
                                                        labels (K floats 0/1) | tokens, ner_tags (BIO ids),
                                                        spans (character spans)
    train.jsonl    validation.jsonl    test.jsonl       the same rows as JSON lines
    dataset/                                            HF DatasetDict (save_to_disk) with ClassLabel features
    manifest.json                                       version_id, snapshot_id, task, class_names,
                                                        class_weights, sampler, counts, test_set (hash of
                                                        its task ids), decisions_applied, ...
    README.md                                           dataset card: counts, label map, lineage, licence

The version id is a hash of everything in the manifest except its creation time (rows, label map, class
weights, sampler, snapshot id, decisions applied, licence), so exporting the same curation twice gives the
same id and leaves the existing folder alone. A new version is written to a temporary folder and renamed
into place, so a reader never sees half a version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from studio.curate import SPLITS
from studio.errors import DataError
from studio.split_ledger import task_set_hash
from studio.tasks import TaskKind

MANIFEST = "manifest.json"


@dataclass
class ExportInfo:
    """Where a data version lives. created=False means the same version already existed and was kept."""

    version_id: str
    path: Path
    created: bool
    manifest: dict[str, Any]


def export_curated(split_df: pd.DataFrame, *, kind: TaskKind, class_names: Sequence[str],
                   out_root: str | Path, snapshot_id: str, decisions_applied: Mapping[str, int] | int,
                   source_license: str, class_weights: Sequence[float] | None = None,
                   sampler: str = "none") -> ExportInfo:
    """Write the data version for `split_df` under `out_root` and return where it is.

    split_df: rows with task_id, text, split ("train"/"validation"/"test") and the kind's target column (class
      names; spans). Train rows may repeat (oversampling). kind: the project's task kind; it encodes the targets.
    class_names: the label map; index i in the files means class_names[i].
    decisions_applied: the review decisions folded into these labels, e.g. {"relabel": 12, "exclude": 3}.
    class_weights: K floats in class_names order (from rebalance with "class_weight"), or None.
    """
    names = [str(c) for c in class_names]
    tables = _encode(split_df, names, kind)
    weights = None if class_weights is None else [float(w) for w in class_weights]
    if weights is not None and len(weights) != len(names):
        raise DataError(f"class_weights has {len(weights)} values, expected {len(names)} (one per class).",
                        hint="pass the weights returned by rebalance() with the same class_names")
    counts = {split: kind.export_counts(tables[split], names) for split in SPLITS}
    body: dict[str, Any] = {
        "snapshot_id": str(snapshot_id),
        "task": kind.name,
        "class_names": names,
        **kind.manifest_extra(names),
        "class_weights": weights,
        "sampler": str(sampler),
        "counts": counts,
        "rows": {split: int(len(tables[split])) for split in SPLITS},
        # Which test tasks scores of this version are measured on (studio/split_ledger.py keeps them stable).
        "test_set": {"hash": task_set_hash(tables["test"]["task_id"]),
                     "tasks": int(tables["test"]["task_id"].nunique())},
        "decisions_applied": decisions_applied if isinstance(decisions_applied, int)
        else {str(k): int(v) for k, v in decisions_applied.items()},
        "source_license": str(source_license),
    }
    version_id = _version_id(body, tables)
    out_root = Path(out_root)
    final = out_root / version_id
    if (final / MANIFEST).exists():
        manifest = json.loads((final / MANIFEST).read_text(encoding="utf-8"))
        return ExportInfo(version_id=version_id, path=final, created=False, manifest=manifest)

    manifest = {"version_id": version_id, **body,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    out_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{version_id}-", dir=out_root))
    tmp.chmod(0o755)  # mkdtemp makes it private; the version folder must be readable like any other
    try:
        _write(tmp, tables, names, kind)
        (tmp / "README.md").write_text(_card(manifest, kind), encoding="utf-8")
        # Manifest last: its presence is what marks a version complete.
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MANIFEST).exists():
                raise
            # Another export of the same content won the race; its folder is identical in content.
            shutil.rmtree(tmp, ignore_errors=True)
            return ExportInfo(version_id=version_id, path=final, created=False,
                              manifest=json.loads((final / MANIFEST).read_text(encoding="utf-8")))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportInfo(version_id=version_id, path=final, created=True, manifest=manifest)


def _encode(split_df: pd.DataFrame, names: list[str], kind: TaskKind) -> dict[str, pd.DataFrame]:
    """Per split: task_id, text, and the kind's encoded columns, rows sorted by task_id (stable)."""
    missing = [c for c in ("task_id", "text", "split", kind.target_column) if c not in split_df.columns]
    if missing:
        raise DataError(f"The data to export lacks columns {missing} (has {list(split_df.columns)}).",
                        hint=f"export the output of split_dataset()/rebalance(); {kind.description} data needs "
                             f"'{kind.target_column}'")
    bad_split = sorted(set(split_df["split"].astype(str)) - set(SPLITS))
    if bad_split:
        raise DataError(f"Unknown split values {bad_split}; expected {list(SPLITS)}.",
                        hint="use split_dataset() to assign splits")
    if (kind.has_classes and len(names) == 0) or len(set(names)) != len(names):
        raise DataError(f"class_names = {names[:10]} must be non-empty and without duplicates.",
                        hint="pass the classes of the labeling config, in label-index order")
    encoded = kind.encode(split_df, names)
    frame = pd.DataFrame({"task_id": split_df["task_id"].astype("int64").to_numpy(),
                          "text": split_df["text"].astype(str).to_numpy(),
                          **{c: v.to_numpy() for c, v in encoded.items()},
                          "split": split_df["split"].astype(str).to_numpy()})
    return {s: frame[frame["split"] == s].drop(columns="split").sort_values("task_id", kind="stable")
            .reset_index(drop=True) for s in SPLITS}


def _version_id(body: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> str:
    h = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    for split in SPLITS:
        h.update(f"\x00{split}\x00".encode())
        for record in tables[split].itertuples(index=False):
            line = json.dumps(list(record), ensure_ascii=False,
                              default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))
            h.update(line.encode("utf-8"))
            h.update(b"\n")
    return f"ds-{h.hexdigest()[:16]}"


def _write(folder: Path, tables: Mapping[str, pd.DataFrame], names: list[str], kind: TaskKind) -> None:
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict, Features, Value

    features = Features({"task_id": Value("int64"), "text": Value("string"), **kind.export_features(names)})
    schema = features.arrow_schema
    parts = {}
    for split, table in tables.items():
        columns = {c: table[c].tolist() for c in features}
        dataset = Dataset.from_dict(columns, features=features)
        pq.write_table(dataset.data.table.cast(schema), folder / f"{split}.parquet")
        table.to_json(folder / f"{split}.jsonl", orient="records", lines=True, force_ascii=False)
        parts[split] = dataset
    from datasets.utils.tqdm import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()  # a background export should not draw bars into the app's log
    try:
        DatasetDict(parts).save_to_disk(str(folder / "dataset"))
    finally:
        if not was_disabled:
            enable_progress_bars()


def _card(manifest: Mapping[str, Any], kind: TaskKind) -> str:
    names: list[str] = manifest["class_names"]
    counts: Mapping[str, Mapping[str, int]] = manifest["counts"]
    n_rows = {s: int(manifest.get("rows", {}).get(s, sum(counts[s].values()))) for s in SPLITS}
    lines = [
        "---",
        "task_categories:",
        f"- {kind.hf_task_category}",
        "---",
        f"# Data version {manifest['version_id']}",
        "",
        f"Curated from Label Studio snapshot `{manifest['snapshot_id']}` ({kind.description} data).",
        "",
        "## Source licence",
        "",
        f"{manifest['source_license']}",
        "",
        "## Review decisions applied",
        "",
    ]
    decisions = manifest["decisions_applied"]
    if isinstance(decisions, Mapping):
        lines += [f"- {k}: {v}" for k, v in decisions.items()] or ["- none"]
    else:
        lines.append(f"- {decisions} decision(s)")
    weights = manifest["class_weights"]
    test_set = manifest.get("test_set") or {}
    if test_set.get("hash"):
        lines += ["", "## Test set", "",
                  f"{test_set['tasks']} tasks, test-set hash `{test_set['hash']}`: two data versions (and the runs "
                  "trained on them) with the same hash are scored on the same test tasks. A task keeps its split "
                  "across versions until the project is re-split."]
    lines += ["", "## Rebalancing", "", f"Sampler: `{manifest['sampler']}` (train split only)."
              + (" Class weights are in the table." if weights else ""), "",
              "## Counts per split and class" if kind.has_classes else "## Rows per split and group", ""]
    if not kind.has_classes:  # no label map: rows per group (e.g. intent) when the data has groups
        groups = sorted({g for s in SPLITS for g in counts[s]})
        lines += ["| group | train | validation | test |", "|---|---|---|---|"]
        lines += [f"| {g} | " + " | ".join(str(counts[s].get(g, 0)) for s in SPLITS) + " |" for g in groups]
        lines.append("| **total** | " + " | ".join(str(n_rows[s]) for s in SPLITS) + " |")
        names = []
    else:
        header = "| index | class | train | validation | test |" + (" weight |" if weights else "")
        lines += [header, "|" + "---|" * (5 + bool(weights))]
    for i, name in enumerate(names):
        row = f"| {i} | {name} | " + " | ".join(str(counts[s][name]) for s in SPLITS) + " |"
        lines.append(row + (f" {weights[i]:.4g} |" if weights else ""))
    if kind.name == "single_label":
        lines.append("| | **total** | " + " | ".join(str(n_rows[s]) for s in SPLITS) + " |"
                     + (" |" if weights else ""))
    lines += ["", "## Files", "",
              "`{train,validation,test}.parquet` and `.jsonl` with columns task_id, text and "
              + kind.card_columns()
              + "; `dataset/` is the same as a Hugging Face DatasetDict (`datasets.load_from_disk`); "
              "`manifest.json` holds the lineage.", ""]
    return "\n".join(lines)
