"""Drafts: the current model's answers to unanswered prompts, pushed to Label Studio for experts to correct, and
how much the experts changed them (instruction -> response projects).

Which prompts get a draft is chosen by diversity over the prompt embeddings (the cold-start strategy of
studio/active.py: the most typical prompt of each k-means cluster): uncertainty-based picking is known to hurt
for generation, where a model's own likelihood says little about where a person's answer helps most. With
`by_confidence`, a wider diverse set is drafted and the least confident drafts (lowest mean token
log-probability) are kept.

Every pushed draft is recorded in the project's draft log (<project state>/drafts/drafts.jsonl, appended), so
after the next sync `edit_stats` compares each draft with the answer an expert submitted after it: the
normalised edit distance (Levenshtein over characters / the longer text's length: 0 = accepted unchanged,
1 = rewritten) and the share accepted unchanged, per model version: a live measure of the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from studio.errors import EmptyDataError
from studio.tasks.generation import normalise
from studio.types import ProgressFn

DRAFT_COLUMNS = ["task_id", "model_version", "draft", "confidence", "pushed_at"]
DRAFTS_TAB = "Drafts to correct"
#: by_confidence drafts this many times `n` diverse prompts and keeps the n least confident drafts.
WIDEN = 3


@dataclass
class DraftBatch:
    """pool: the chosen prompts in the order to answer them (task_id, text, draft, confidence = exp(mean token
    log-probability), rank); model_version: the run that wrote them; strategy: how the prompts were chosen."""

    pool: pd.DataFrame
    model_version: str
    strategy: str


def choose_prompts(embeddings: np.ndarray, n: int, *, seed: int = 0) -> np.ndarray:
    """Indices of n diverse, typical prompts (studio.active's cold-start selection on the prompt embeddings)."""
    from studio.active import get_strategy

    if n <= 0 or len(embeddings) == 0:
        return np.zeros(0, dtype=np.int64)
    return get_strategy("cold_start").select(None, n=min(n, len(embeddings)), embeddings=embeddings, seed=seed)


def draft_batch(pool: pd.DataFrame, embeddings: np.ndarray, generate: Callable[..., tuple[list[str], Any]], *,
                n: int, model_version: str, by_confidence: bool = False, seed: int = 0,
                progress: ProgressFn | None = None) -> DraftBatch:
    """Choose n prompts of `pool` (task_id, text; unanswered tasks) and draft an answer to each.

    generate(texts, progress=...) -> (drafts, mean token log-probabilities): the run's Generator
    (TaskKind.predict). by_confidence: draft WIDEN x n diverse prompts, keep the n least confident."""
    if pool.empty:
        raise EmptyDataError("There are no unanswered prompts to draft answers for.",
                             hint="import more prompts with `studio import FILE`")
    wanted = min(n, len(pool))
    picked = choose_prompts(embeddings, min(len(pool), wanted * (WIDEN if by_confidence else 1)), seed=seed)
    chosen = pool.iloc[picked][["task_id", "text"]].reset_index(drop=True)
    drafts, logprobs = generate(chosen["text"].tolist(), progress=progress)
    chosen["draft"] = list(drafts)
    chosen["confidence"] = np.exp(np.clip(np.asarray(logprobs, dtype=float), -50.0, 0.0))
    if by_confidence:
        chosen = chosen.sort_values("confidence", kind="stable").head(wanted).reset_index(drop=True)
    chosen["rank"] = np.arange(len(chosen))
    strategy = "diverse_low_confidence" if by_confidence else "diverse"
    return DraftBatch(chosen, model_version, strategy)


class DraftLog:
    """Append-only JSONL of pushed drafts for one project (DRAFT_COLUMNS per line)."""

    def __init__(self, folder: str | Path) -> None:
        self.file = Path(folder) / "drafts.jsonl"

    def append(self, batch: DraftBatch) -> None:
        from studio.atomic import append_lines

        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        lines = [json.dumps({"task_id": int(r.task_id), "model_version": batch.model_version, "draft": r.draft,
                             "confidence": float(r.confidence), "pushed_at": now}, ensure_ascii=False)
                 for r in batch.pool.itertuples(index=False)]
        append_lines(self.file, lines)

    def read(self) -> pd.DataFrame:
        from studio.atomic import read_log_lines

        # A line cut by a crash mid-append is left out (and named in a warning); the rest stays readable.
        return pd.DataFrame(read_log_lines(self.file).rows, columns=DRAFT_COLUMNS)


def edit_distance(a: str, b: str) -> float:
    """Normalised Levenshtein distance of the whitespace-normalised texts: 0 identical, 1 nothing in common."""
    from rapidfuzz.distance import Levenshtein

    return float(Levenshtein.normalized_distance(normalise(a), normalise(b)))


def draft_edits(drafts: pd.DataFrame, answers: pd.DataFrame) -> pd.DataFrame:
    """Each draft next to the first answer an expert submitted to its task after it was pushed.

    drafts: DraftLog.read(); answers: Snapshot.responses() (task_id, annotator, response, updated_at). Returns
    task_id, model_version, draft, response, annotator, distance, unchanged; drafts not answered yet are left
    out. A task drafted by several versions counts for the latest draft before its answer."""
    columns = ["task_id", "model_version", "draft", "response", "annotator", "distance", "unchanged"]
    if drafts.empty or answers.empty:
        return pd.DataFrame(columns=columns)
    answered = answers[answers["response"].str.strip() != ""].copy()
    answered["at"] = pd.to_datetime(answered["updated_at"], utc=True, errors="coerce")
    log = drafts.copy()
    log["at"] = pd.to_datetime(log["pushed_at"], utc=True, errors="coerce")
    rows = []
    for task_id, task_answers in answered.sort_values("at").groupby("task_id"):
        task_drafts = log[log["task_id"] == task_id].sort_values("at")
        if task_drafts.empty:
            continue
        first = task_answers.iloc[0]
        before = task_drafts[task_drafts["at"] <= first["at"]] if pd.notna(first["at"]) else task_drafts
        if before.empty:
            continue  # answered before any draft was pushed: not a correction of a draft
        draft = before.iloc[-1]
        distance = edit_distance(draft["draft"], first["response"])
        rows.append({"task_id": int(task_id), "model_version": draft["model_version"], "draft": draft["draft"],
                     "response": first["response"], "annotator": first["annotator"], "distance": distance,
                     "unchanged": distance == 0.0})
    return pd.DataFrame(rows, columns=columns)


def edit_stats(edits: pd.DataFrame, drafts: pd.DataFrame) -> pd.DataFrame:
    """Per model version: drafts pushed, answered, mean and median normalised edit distance, share accepted
    unchanged (of the answered ones)."""
    columns = ["model_version", "drafts", "answered", "mean_distance", "median_distance", "unchanged_share"]
    if drafts.empty:
        return pd.DataFrame(columns=columns)
    pushed = drafts.groupby("model_version")["task_id"].nunique()
    rows = []
    for version, n in pushed.items():
        mine = edits[edits["model_version"] == version]
        rows.append({"model_version": version, "drafts": int(n), "answered": len(mine),
                     "mean_distance": float(mine["distance"].mean()) if len(mine) else float("nan"),
                     "median_distance": float(mine["distance"].median()) if len(mine) else float("nan"),
                     "unchanged_share": float(mine["unchanged"].mean()) if len(mine) else float("nan")})
    return pd.DataFrame(rows, columns=columns)
