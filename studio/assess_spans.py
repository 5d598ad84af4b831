"""Snapshot -> the span (named-entity) quality report, and that report on disk.

The spans kind's counterpart of studio/assess.py: the labeled view's texts and consensus spans, out-of-sample
word probabilities from the fast token learner (cross-validated on frozen-encoder word vectors), then
`studio.span_quality.run_span_quality` (the studio's detection beside plain cleanlab token classification) and,
where tasks have two or more annotators, span agreement per entity type and each annotator's quality against
the consensus. Stored under <state>/quality/<snapshot_id>/ like the classification report, with meta.json
saying which kind it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from studio.report_tables import load_tables, read_meta, save_tables
from studio.errors import EmptyDataError
from studio.snapshot import Snapshot
from studio.tasks.base import usable_votes
from studio.types import ProgressFn

#: Columns holding lists or dicts, stored as JSON text in parquet.
_JSON_COLUMNS = ("worst_words", "given_spans", "suggested_spans", "annotators", "types", "tasks")


@dataclass
class SpanAssessment:
    """sentences: one row per labeled task (task_id, text, score: lower = more likely mislabeled, is_issue, kind,
    cleanlab_score / cleanlab_issue: plain cleanlab token classification, worst_words, given_spans,
    suggested_spans); tokens: the flagged words (task_id, word, given and suggested tag); surface_forms: span
    texts labeled with more than one type; boundaries: spans whose edges the model would move; agreement: exact
    and partial span F1 between annotators per type; annotators: each annotator against the consensus."""

    snapshot_id: str
    sentences: pd.DataFrame
    tokens: pd.DataFrame
    surface_forms: pd.DataFrame
    boundaries: pd.DataFrame
    agreement: pd.DataFrame
    annotators: pd.DataFrame
    meta: dict

    TABLES = ("sentences", "tokens", "surface_forms", "boundaries", "agreement", "annotators")
    KIND = "spans"

    def flagged(self) -> pd.DataFrame:
        """The tasks the studio flags, most likely mislabeled first."""
        return self.sentences[self.sentences["is_issue"]].sort_values("score", kind="stable")

    def save(self, folder: Path) -> None:
        """Every table, then meta.json (studio/report_tables.py: a reader never sees half)."""
        save_tables(folder, {name: getattr(self, name) for name in self.TABLES}, {**self.meta, "kind": self.KIND})

    @classmethod
    def load(cls, folder: Path, snapshot_id: str) -> SpanAssessment | None:
        meta = read_meta(folder)
        if meta is None or meta.get("kind") != cls.KIND:
            return None
        return cls(snapshot_id=snapshot_id, meta=meta, **load_tables(folder, cls.TABLES, json_columns=_JSON_COLUMNS))


def build_span_assessment(snapshot: Snapshot, encode_words: Callable[[list[str]], list[np.ndarray]], *,
                          folds: int = 5, seed: int = 0, progress: ProgressFn | None = None) -> SpanAssessment:
    """The span quality report of a snapshot. encode_words(texts) -> per text (W, D) word vectors
    (studio.token_embeddings.encode_words with the configured encoder and cache)."""
    from studio.span_learner import out_of_sample_word_probs
    from studio.span_quality import run_span_quality
    from studio.span_agreement import annotator_span_quality, span_agreement
    from studio.spans import bio_tag_names, spans_to_tags, word_offsets

    kind = snapshot.schema.kind
    kind.require("quality", what="Span quality checks")
    types = list(kind.classes)
    labeled = snapshot.labeled()
    if len(labeled) < folds:
        raise EmptyDataError(f"Snapshot {snapshot.id} has {len(labeled)} labeled texts; the span checks "
                             f"cross-validate over {folds} folds and need at least that many.",
                             hint="label more texts in Label Studio, sync, and run the checks again")
    texts = labeled["text"].tolist()
    spans = [list(s) for s in labeled["spans"]]
    tags = [spans_to_tags(word_offsets(t), s, types) for t, s in zip(texts, spans)]
    vectors = encode_words(texts)
    probs = out_of_sample_word_probs(vectors, tags, len(bio_tag_names(types)), texts=texts, folds=folds, seed=seed,
                                     progress=progress)
    report = run_span_quality(texts, spans, types, word_probs=probs)
    task_ids = labeled["task_id"].to_numpy()
    sentences = report.sentences.assign(task_id=task_ids[report.sentences["task_index"].to_numpy()],
                                        text=[texts[i] for i in report.sentences["task_index"]])
    tokens = report.tokens.assign(task_id=task_ids[report.tokens["task_index"].to_numpy()]
                                  if len(report.tokens) else pd.Series(dtype="int64"))

    # Several annotators: every annotator's usable spans per task, against each other and the consensus.
    votes = usable_votes(kind, snapshot.tasks, snapshot.annotations)
    rows = [{"task_id": t, "annotator": who, "spans": s} for t, task_votes in votes.items() for who, s in task_votes]
    per_annotator = pd.DataFrame(rows, columns=["task_id", "annotator", "spans"])
    per_annotator = per_annotator.drop_duplicates(["task_id", "annotator"], keep="last")  # latest answer each
    multi = per_annotator.groupby("task_id")["annotator"].transform("size") >= 2
    agreement = span_agreement(per_annotator[multi], types) if multi.any() else pd.DataFrame()
    consensus = dict(zip(labeled["task_id"], spans))
    annotators = annotator_span_quality(per_annotator[multi], consensus) if multi.any() else pd.DataFrame()
    meta = {"model": "fast token learner (cross-validated logistic regression on frozen word vectors)",
            "folds": folds, "n_labeled": len(labeled), "classes": types, "tag_names": report.tag_names,
            "threshold": report.threshold, "error_rate": report.error_rate,
            "flagged": int(sentences["is_issue"].sum()), "cleanlab_flagged": int(sentences["cleanlab_issue"].sum()),
            "warnings": []}
    return SpanAssessment(snapshot.id, sentences, tokens, report.surface_forms, report.boundaries, agreement,
                          annotators, meta)


def span_review_requests(rows: pd.DataFrame, kind) -> pd.DataFrame:
    """Flagged sentences -> what `ws.review.send_for_review` pushes and logs: task_id, target (the suggested
    spans), score (the task's quality score), and for the request log given_label / suggested_label (the spans in a
    few words) and confidence (1 - score)."""
    return pd.DataFrame({
        "task_id": rows["task_id"].to_numpy(),
        "target": pd.Series([list(s) for s in rows["suggested_spans"]], dtype=object).to_numpy(),
        "score": rows["score"].to_numpy(dtype=float),
        "given_label": [kind.target_text(s) for s in rows["given_spans"]],
        "suggested_label": [kind.target_text(s) for s in rows["suggested_spans"]],
        "confidence": 1.0 - rows["score"].to_numpy(dtype=float)})
