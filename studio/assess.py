"""Snapshot -> the inputs of the quality and consensus stages, and their results on disk.

Pure reshaping (labeled view -> arrays, annotations -> task x annotator matrix) plus a small store that keeps
one assessment per snapshot under <state>/quality/<snapshot_id>/, so a page reload or the CLI reads it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from studio.atomic import atomic_path, write_json_atomic
from studio.report_tables import load_tables, read_meta, save_tables
from studio.errors import UnsupportedTaskKind
from studio.snapshot import Snapshot


@dataclass
class Assessment:
    """issues: ISSUE_COLUMNS + text, annotators; class_summary, confusion: from run_quality; consensus tables
    (empty when no task has two annotators); meta: model, model scores, warnings, counts."""

    snapshot_id: str
    issues: pd.DataFrame
    class_summary: pd.DataFrame
    confusion: pd.DataFrame
    consensus_tasks: pd.DataFrame
    annotators: pd.DataFrame
    agreement: pd.DataFrame
    annotator_confusion: pd.DataFrame
    meta: dict

    TABLES = ("issues", "class_summary", "confusion", "consensus_tasks", "annotators", "agreement",
              "annotator_confusion")

    def save(self, folder: Path) -> None:
        """Every table, then meta.json (studio/report_tables.py: a reader never sees half)."""
        save_tables(folder, {name: getattr(self, name) for name in self.TABLES}, self.meta)

    @classmethod
    def load(cls, folder: Path, snapshot_id: str) -> "Assessment | None":
        meta = read_meta(folder)
        if meta is None or meta.get("kind") not in (None, "classification"):
            return None  # another kind's report (studio/assess_spans.py, studio/assess_generation.py)
        tables = load_tables(folder, cls.TABLES, json_columns=("annotators",))
        issues = tables["issues"]
        if "confidence" not in issues:  # reports stored before the column existed
            issues["confidence"] = np.nan
        return cls(snapshot_id=snapshot_id, meta=meta, **tables)


#: Cross-validated probabilities of the fine-tuned model (training/crossval.py) and what produced them, beside the
#: assessment.
CROSSVAL_FILE = "crossval_probs.parquet"
CROSSVAL_META = "crossval.json"


def save_crossval(folder: Path, task_ids: np.ndarray, labels: np.ndarray, probs: np.ndarray, meta: dict) -> Path:
    """Write (task_id, label, probs) rows and the meta (folds, base model, ...) under folder; returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"task_id": np.asarray(task_ids), "label": np.asarray(labels),
                          "probs": [row.tolist() for row in np.asarray(probs, dtype=float)]})
    with atomic_path(folder / CROSSVAL_FILE) as tmp:
        frame.to_parquet(tmp)
        write_json_atomic(folder / CROSSVAL_META, meta)
    # The rows replace the old ones last (leaving the block): a reader never sees rows without their meta.
    return folder / CROSSVAL_FILE


def read_crossval_meta(folder: Path) -> dict | None:
    """The meta stored with a folder's cross-validated probabilities (None: there are none)."""
    file = folder / CROSSVAL_META
    return json.loads(file.read_text()) if file.exists() else None


def load_crossval(folder: Path, task_ids: np.ndarray, labels: np.ndarray,
                  n_classes: int) -> tuple[np.ndarray | None, dict, str | None]:
    """(probs aligned to task_ids, meta, None) when stored probabilities match these tasks and labels;
    (None, {}, None) when there are none; (None, meta, why) when they were computed on other labels."""
    file = folder / CROSSVAL_FILE
    if not file.exists():
        return None, {}, None
    meta = read_crossval_meta(folder) or {}
    frame = pd.read_parquet(file).set_index("task_id")
    ids = np.asarray(task_ids)
    if not frame.index.is_unique or not set(ids) <= set(frame.index):
        return None, meta, "they do not cover every labeled task of this snapshot"
    frame = frame.loc[ids]
    if not np.array_equal(frame["label"].to_numpy(), np.asarray(labels)):
        return None, meta, "they were computed on other labels than the ones being checked"
    probs = np.asarray(frame["probs"].tolist(), dtype=float)
    if probs.shape != (len(ids), n_classes):
        return None, meta, f"they have shape {probs.shape}, not {(len(ids), n_classes)}"
    return probs, meta, None


def quality_inputs(snapshot: Snapshot) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """(labeled view, (N,) class indices, class names) for single-label snapshots."""
    schema = snapshot.schema
    schema.kind.require("quality", what="The label-quality checks")
    if schema.kind.name != "single_label":
        raise UnsupportedTaskKind(f"The classification label-quality checks do not handle {schema.kind.description} "
                                  "projects.", hint="run the checks of this project's own kind (Quality page)")
    labeled = snapshot.labeled()
    classes = list(schema.classes)
    index = {c: i for i, c in enumerate(classes)}
    return labeled, labeled["label"].map(index).to_numpy(dtype=np.int64), classes


def annotator_matrix(snapshot: Snapshot, task_ids: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """(N tasks x M annotators) class index or NaN, rows in `task_ids` order; each annotator's latest usable
    label per task (cancelled and unknown labels are left out, as in the validation report)."""
    index = {c: i for i, c in enumerate(classes)}
    a = snapshot.annotations
    usable = a[~a["was_cancelled"] & a["labels"].map(lambda ls: len(ls) > 0 and ls[0] in index)]
    usable = usable.sort_values(["updated_at", "annotation_id"]).assign(
        label=lambda f: f["labels"].map(lambda ls: index[ls[0]]))
    latest = usable.groupby(["task_id", "annotator"])["label"].last().unstack("annotator")
    return latest.reindex(task_ids).astype(float)


def build_assessment(snapshot: Snapshot, embed: Callable[[list[str]], np.ndarray], *, config,
                     crossval_folder: Path | None = None) -> Assessment:
    """Quality checks on the snapshot's labeled view, plus CROWDLAB consensus when some task has two or more
    annotators. embed(texts) -> (N, D) embeddings of the labeled texts, in order; not called for long documents
    (studio.quality.dense_view: the TF-IDF view alone). config: a QualityConfig.
    crossval_folder: where save_crossval may have stored the fine-tuned model's cross-validated probabilities;
    when they match the labels they join the candidates as "external"."""
    from studio.consensus import run_consensus
    from studio.quality import dense_view, run_quality

    labeled, y, classes = quality_inputs(snapshot)
    task_ids = labeled["task_id"].to_numpy()
    external, external_meta, why = (load_crossval(crossval_folder, task_ids, y, len(classes))
                                    if crossval_folder is not None else (None, {}, None))
    use_embeddings, why_view = dense_view(labeled["text"].tolist(), config)
    embeddings = embed(labeled["text"].tolist()) if use_embeddings else None
    report = run_quality(labeled["text"].tolist(), y, classes, embeddings=embeddings, task_ids=task_ids,
                         config=config, pred_probs=external)
    issues = report.issues.merge(labeled[["task_id", "text", "annotators"]], on="task_id", how="left")
    matrix = annotator_matrix(snapshot, labeled["task_id"].to_numpy(), classes)
    empty = pd.DataFrame()
    consensus = dict(consensus_tasks=empty, annotators=empty, agreement=empty, annotator_confusion=empty)
    warnings = list(report.warnings)
    if why is not None:
        warnings.append(f"The fine-tuned model's cross-validated probabilities were not used: {why}. "
                        "Cross-validate it again on this snapshot.")
    if matrix.shape[1] >= 2 and (matrix.notna().sum(axis=1) >= 2).any():
        result = run_consensus(matrix, classes, texts=labeled["text"].tolist(), embeddings=embeddings,
                               pred_probs=report.pred_probs, threads=config.threads)
        tasks = result.tasks.copy()
        tasks.insert(0, "task_id", labeled["task_id"].to_numpy())
        consensus = dict(consensus_tasks=tasks, annotators=result.annotators.reset_index(drop=True),
                         agreement=_table(result.agreement, "class"),
                         annotator_confusion=result.annotator_confusion)
        warnings += result.warnings
    meta = {"model": report.model, "model_scores": report.model_scores, "warnings": warnings,
            "n_labeled": len(labeled), "classes": classes,
            "external": external_meta if external is not None else None,
            # Why these probabilities: each candidate's figures and the rule that picked one (the Quality page
            # and `studio quality` show it), how the texts were seen, and how long they are.
            "choice": report.choice, "score_method": config.score_method, "refit": report.refit,
            "view": {**report.view, "why": why_view,
                     "long_texts": ("embedded whole, as the mean of their encoder windows" if use_embeddings
                                    else "not embedded: TF-IDF of every word")},
            "texts": report.texts}
    return Assessment(snapshot.id, issues, _table(report.class_summary, "class"), _table(report.confusion, "given"),
                      meta=meta, **consensus)


def _table(frame: pd.DataFrame, index_name: str) -> pd.DataFrame:
    """A report frame with its row labels as a column named `index_name` (kept if already a column)."""
    if index_name in frame.columns:
        return frame.reset_index(drop=True)
    return frame.rename_axis(index_name).reset_index()
