"""Drafts for unanswered prompts: which prompts, the draft log, and how much experts changed the drafts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from studio.drafts import DraftLog, draft_batch, draft_edits, edit_distance, edit_stats
from studio.errors import EmptyDataError


def _pool(n: int = 30):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8))
    e = np.concatenate([c + 0.05 * rng.normal(size=(n // 3, 8)) for c in centres])
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    return pd.DataFrame({"task_id": np.arange(1, n + 1), "text": [f"prompt {i}" for i in range(n)]}), e


def fake_generate(texts, progress=None):
    return [f"draft for {t}" for t in texts], [-0.1 * (i + 1) for i in range(len(texts))]


def test_drafts_go_to_diverse_prompts_and_by_confidence_keeps_the_least_confident():
    pool, e = _pool()
    batch = draft_batch(pool, e, fake_generate, n=3, model_version="run-1")
    clusters = (batch.pool["task_id"] - 1) // 10
    assert sorted(clusters) == [0, 1, 2]                  # one prompt from each topic
    assert batch.pool["draft"].str.startswith("draft for").all() and batch.strategy == "diverse"
    wide = draft_batch(pool, e, fake_generate, n=3, model_version="run-1", by_confidence=True)
    assert len(wide.pool) == 3 and wide.pool["confidence"].is_monotonic_increasing
    assert wide.pool["confidence"].max() < np.exp(-0.6)   # the 3 least confident of 9 drafts
    with pytest.raises(EmptyDataError):
        draft_batch(pool.head(0), e[:0], fake_generate, n=3, model_version="run-1")


def test_the_draft_log_survives_a_cut_line_and_edits_are_measured_per_version(tmp_path):
    pool, e = _pool()
    log = DraftLog(tmp_path)
    batch = draft_batch(pool, e, fake_generate, n=3, model_version="run-1")
    log.append(batch)
    with open(log.file, "a") as handle:
        handle.write('{"task_id": 9, "model_vers')        # a crash mid-append
    drafts = log.read()
    assert len(drafts) == 3
    ids = drafts["task_id"].tolist()
    later = "2999-01-01T00:00:00+00:00"
    answers = pd.DataFrame({"task_id": ids[:2], "annotator": ["a@x", "b@x"],
                            "response": [drafts["draft"][0], "Something else entirely, rewritten."],
                            "updated_at": [later, later]})
    edits = draft_edits(drafts, answers)
    by_task = edits.set_index("task_id")
    assert by_task.loc[ids[0], "unchanged"] and not by_task.loc[ids[1], "unchanged"]
    assert by_task.loc[ids[1], "distance"] > 0.5
    stats = edit_stats(edits, drafts).set_index("model_version")
    assert stats.loc["run-1", "drafts"] == 3 and stats.loc["run-1", "answered"] == 2
    assert stats.loc["run-1", "unchanged_share"] == 0.5
    early = answers.assign(updated_at="2000-01-01T00:00:00+00:00")  # answered before the draft: not a correction
    assert draft_edits(drafts, early).empty


def test_edit_distance_ignores_spacing():
    assert edit_distance("a  b\n", "a b") == 0.0
    assert edit_distance("abc", "xyz") == 1.0
