"""Label quality for the generation task kind: prompts answered by experts with free-text responses.

    report = run_generation_checks(frame, embed=lambda texts: encode(texts, cache_dir=...))
    report.issues        # long table, studio.gen_checks.ISSUE_COLUMNS; higher score = worse
    report.summary()     # per check: flagged rows, tasks, the thresholds used (for the report page)

Input: one row per (task, annotator) response with task_id, prompt, response, annotator. The checks are a
registry (`available_generation_checks()`, studio/gen_checks/): exact_duplicate_prompt, near_duplicate_prompt,
conflicting_responses, length_outlier, unrelated_response, personal_data, expert_disagreement, datalab. The
per-text validation helpers for the snapshot's validation report are re-exported here (validate_prompt,
validate_response, VALIDATION_PROBLEMS). No I/O, no Label Studio, no Streamlit; torch is never imported here
(the caller's `embed` may).

Measured on customer_support_sft (all 4,514 rows, one response each, packaged all-MiniLM-L6-v2, 2 shared CPU
cores under a load average of ~4.5, so times are upper bounds):

- time: the registry on cached embeddings 11-15 s (unrelated_response 6.5-9.6 s, mostly the character TF-IDF
  view; Datalab 0.9-1.2 s; prompt kNN 0.8-0.9 s; the rest under 1.2 s each), peak RSS 0.39 GB. On a cold
  cache encoding adds 76 s (prompts) + 323 s (responses, cut at 128 tokens), peak RSS 1.05 GB (the encoder).
- flags: exact_duplicate_prompt 146 (the 73 same-key pairs the data set's README lists); near_duplicate_prompt
  1,592 tasks in 525 groups, every sampled group a real duplicate (Bitext expanded seed texts by template:
  "cancel purchase 732201349959" / "... 113542617735902"; 831 at 0.97, 488 at 0.98); conflicting_responses 50
  (one near-duplicate answered with a step list, the other with "please give me the order number", or
  "give me a moment to access our database"); length_outlier 16 (5 one-word prompts such as "refunding$3";
  11 responses of 20-27 words, half of them hollow, "I'm here to help ... How can I assist you?", the rest a
  one-line request for the order number); unrelated_response 4 ("using the Platinum prfile" answered about the
  Freemium account; an unreadable "making coaim"; a generic "give me the order number" to "how soon can I
  expect the item"; one false flag, a paraphrase); personal_data 0 (its only e-mail, support@company.com, is a
  role mailbox: 2 rows with pii_skip_role_emails=False; the 9,264 {{slots}} and the [Customer Support Phone
  Number] slots of 106 responses are masked); expert_disagreement 0 (one expert per prompt); datalab
  near_duplicate 268, outlier 125 (typo-ridden prompts: "claim against your organizatin"), non_iid 1 (p = 0:
  the file is sorted by intent).
- thresholds were set by reading 10 flagged rows per check and the rows just past each threshold, and checked on
  injected errors: 56-60 responses swapped between rows of different intents (3 seeds) are caught 84-87% of the
  time by unrelated_response, with 2-4 of the ~4,400 untouched rows flagged. The near-duplicate threshold 0.95
  keeps groups single-intent (1 of 552 groups mixes check_invoice / get_invoice); below ~0.93 paraphrases of
  other intents join ("asking for refunds" / "in which situations can I ask for refunds"). A conflict is a
  response cosine below 0.6: responses to near-duplicate prompts have a median of 0.86 and a lower Tukey fence
  of 0.62; two random responses of one intent 0.64, of different intents 0.50.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from studio.errors import DataError, did_you_mean
from studio.gen_checks import (GENERATION_CHECKS, INPUT_COLUMNS, ISSUE_COLUMNS, EmbedFn, GenerationContext,
                               GenerationQualityConfig, available_generation_checks, empty_issues,
                               get_generation_check)
from studio.gen_checks.datalab_check import datalab_summary
from studio.gen_checks.disagreement import expert_disagreement
from studio.gen_checks.duplicates import near_duplicate_prompt_groups
from studio.gen_checks.pii import PII_PATTERNS, find_personal_data, luhn_valid
from studio.gen_checks.text import find_placeholders, normalise_prompt
from studio.gen_checks.validation import VALIDATION_PROBLEMS, validate_prompt, validate_response
from studio.types import ProgressFn

__all__ = ["GenerationQualityConfig", "GenerationQualityReport", "ISSUE_COLUMNS", "PII_PATTERNS",
           "VALIDATION_PROBLEMS", "available_generation_checks", "expert_disagreement", "find_personal_data",
           "find_placeholders", "luhn_valid", "near_duplicate_prompt_groups", "normalise_prompt",
           "run_generation_checks", "summarise_issues", "validate_prompt", "validate_response"]

SUMMARY_COLUMNS = ["check", "description", "flagged", "tasks", "thresholds"]


@dataclass
class GenerationQualityReport:
    """issues: ISSUE_COLUMNS rows, in registry order, worst (highest score) first within a check.
    info: per check name, the thresholds it used and data-derived figures (medians, fences, group counts).
    checks: the check names that ran. datalab_summary: cleanlab's own summary (lower score = more severe).
    timings: seconds per stage. warnings: what the user should know (e.g. skipped checks)."""

    issues: pd.DataFrame
    info: dict[str, dict[str, Any]]
    checks: list[str]
    n_tasks: int
    n_responses: int
    datalab_summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def flagged(self, check: str | None = None) -> pd.DataFrame:
        """Rows of one check (None = all), highest score first."""
        rows = self.issues if check is None else self.issues[self.issues["check"] == check]
        return rows.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)

    def summary(self) -> pd.DataFrame:
        return summarise_issues(self)


def _prepare(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Validate the input frame; return (responses, tasks, task_row)."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame with columns {list(INPUT_COLUMNS)}, got {type(frame).__name__}.",
                        hint="build one row per (task, annotator) response")
    missing = [c for c in INPUT_COLUMNS if c not in frame.columns]
    if missing:
        guesses = "".join(did_you_mean(c, [str(x) for x in frame.columns]) for c in missing)
        raise DataError(f"the responses frame lacks column(s) {missing}; it has {list(frame.columns)}.{guesses}",
                        hint=f"rename the columns to {list(INPUT_COLUMNS)} (annotator may be '' when unknown)")
    out = frame[list(INPUT_COLUMNS)].reset_index(drop=True).copy()
    if out["task_id"].isna().any():
        rows = np.flatnonzero(out["task_id"].isna().to_numpy())[:5].tolist()
        raise DataError(f"task_id is missing in row(s) {rows}.", hint="every response must name its task")
    for col in ("prompt", "response", "annotator"):
        out[col] = out[col].where(out[col].notna(), "").astype(str)
    prompts = out.groupby("task_id", sort=False)["prompt"].nunique()
    if (prompts > 1).any():
        bad = prompts[prompts > 1].index[:5].tolist()
        raise DataError(f"task(s) {bad} carry different prompts in different rows; expected one prompt per task.",
                        hint="take the prompt from the task data, not from each annotation")
    tasks = out.drop_duplicates("task_id")[["task_id", "prompt"]].reset_index(drop=True)
    task_row = pd.Index(tasks["task_id"]).get_indexer(out["task_id"]).astype(np.int64)
    return out, tasks, task_row


def run_generation_checks(frame: pd.DataFrame, embed: EmbedFn | None = None, *, checks: Sequence[str] | None = None,
                          config: GenerationQualityConfig | None = None,
                          progress: ProgressFn | None = None) -> GenerationQualityReport:
    """Run the generation checks on N responses to T tasks.

    frame: one row per (task, annotator) response: task_id, prompt, response, annotator (other columns ignored;
    NaN text is read as ""). embed(texts) -> (len(texts), D) unit vectors; each distinct text is passed once.
    It may be None when only checks without embeddings are selected (length_outlier, personal_data,
    exact_duplicate_prompt). checks: names from available_generation_checks() (None = all).
    progress(done, total) is called as checks finish. Returns a report; an empty frame gives an empty one.
    Raises DataError (missing columns, one task with two prompts) and ConfigError (unknown check, no embed).
    """
    config = config or GenerationQualityConfig()
    names = list(GENERATION_CHECKS) if checks is None else list(checks)
    selected = [get_generation_check(name) for name in names]  # unknown names fail before any work is done
    responses, tasks, task_row = _prepare(frame)
    report = GenerationQualityReport(issues=empty_issues(), info={}, checks=names, n_tasks=len(tasks),
                                     n_responses=len(responses))
    if len(responses) == 0:
        report.warnings.append("There are no responses to check.")
        return report
    ctx = GenerationContext(responses=responses, tasks=tasks, task_row=task_row, embed=embed, config=config)
    if any(c.needs_embeddings for c in selected):
        for stage in ("prompt_embeddings", "response_embeddings", "prompt_knn"):
            start = time.perf_counter()
            getattr(ctx, stage)
            report.timings[stage] = time.perf_counter() - start
    frames = []
    for done, check in enumerate(selected, start=1):
        start = time.perf_counter()
        result = check.run(ctx)
        report.timings[check.name] = time.perf_counter() - start
        report.info[check.name] = result.info
        if "skipped" in result.info:
            report.warnings.append(f"{check.name} was skipped: {result.info['skipped']}.")
        if len(result.issues):
            frames.append(result.issues.sort_values("score", ascending=False, kind="stable"))
        if progress:
            progress(done, len(selected))
    if frames:
        report.issues = pd.concat(frames, ignore_index=True)[ISSUE_COLUMNS]
    report.datalab_summary = datalab_summary(ctx)
    return report


def _format_info(info: dict[str, Any]) -> str:
    """key=value pairs of the scalar thresholds and figures (nested dicts one level deep), for one table cell."""
    def fmt(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    parts = []
    for key, value in info.items():
        if key in ("summary", "patterns"):
            continue
        if isinstance(value, dict):
            parts.append(f"{key}: " + ", ".join(f"{k}={fmt(v)}" for k, v in value.items()))
        else:
            parts.append(f"{key}={fmt(value)}")
    return "; ".join(parts)


def summarise_issues(report: GenerationQualityReport) -> pd.DataFrame:
    """One row per issue name that the checks which ran can produce: check, description, flagged (rows),
    tasks (distinct task ids), thresholds (what the check used and measured, as text). Checks with no flags are
    listed with 0, so the page shows what was looked for."""
    rows = []
    for name in report.checks:
        cls = GENERATION_CHECKS[name]
        for issue in cls.issue_names():
            hits = report.issues[report.issues["check"] == issue]
            rows.append({"check": issue, "description": cls.description, "flagged": len(hits),
                         "tasks": int(hits["task_id"].nunique()),
                         "thresholds": _format_info(report.info.get(name, {}))})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
