"""Instruction -> response (generation): a `<TextArea>` answering a `<Text>` prompt. Target: the answer text.

Several experts may answer one prompt; every answer stays in the snapshot, and the task's target is the most
recent one (a review decision can replace it with another annotator's: "relabel" with that text). There are no
classes: splits keep near-duplicate prompts together (the curation stage's groups), and the quality checks of
this kind are in studio/generation_quality.py. Exported rows carry the pair in the two formats TRL's
SFTTrainer reads: `prompt` / `completion` strings and a chat `messages` list.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd

from studio.errors import DataError
from studio.gen_checks.validation import VALIDATION_PROBLEMS, validate_prompt, validate_response
from studio.tasks.base import TaskKind, Vote, margin_rows

#: A prompt longer than this many characters is listed (a 2k-token context holds about 8,000 characters of
#: English; the training stage checks the real token count against the model's context).
LONG_PROMPT_CHARS = 8_000


def normalise(text: str) -> str:
    """Whitespace collapsed and stripped: two answers that differ only in spacing are the same answer."""
    return " ".join(str(text).split())


def messages(prompt: str, response: str | None = None, *, system: str = "") -> list[dict[str, str]]:
    """A chat `messages` list: an optional system turn, the user's prompt, the assistant's answer (if given)."""
    turns = [{"role": "system", "content": system}] if system else []
    turns.append({"role": "user", "content": prompt})
    if response is not None:
        turns.append({"role": "assistant", "content": response})
    return turns


class Generation(TaskKind):
    name = "generation"
    target_column = "response"
    description = "instruction -> response"
    # consensus (CROWDLAB) and the per-task ML backend have no meaning for free text: drafts are pushed in
    # batches (`studio active --push`), and experts' disagreement is a quality check.
    stages = frozenset({"sync", "quality", "review", "curate", "train", "predict", "push", "active"})
    hf_task_category: ClassVar[str] = "text-generation"
    has_classes: ClassVar[bool] = False
    min_classes: ClassVar[int] = 0
    #: The validation report's keys for this kind (studio/gen_checks/validation.py checks each text).
    problems: ClassVar[dict[str, str]] = dict(VALIDATION_PROBLEMS)

    def answer(self, result: list[dict[str, Any]]) -> str:
        """The text an annotation's `result` gives for the config's <TextArea> ("" when none)."""
        parts: list[str] = []
        for item in result or []:
            if item.get("from_name") != self.schema.from_name:
                continue
            for value in (item.get("value") or {}).get("text", []) or []:
                parts.append(str(value))
        return "\n".join(parts)

    def target_of(self, labels: Sequence[str], result: list[dict[str, Any]], text: str) -> str | None:
        answer = self.answer(result)
        return answer if answer.strip() else None

    def annotation_problems(self, labels: Sequence[str], result: list[dict[str, Any]],
                            text: str) -> list[tuple[str, str]]:
        """The answer's problems (empty, the prompt copied, unfilled slots, broken text) and the prompt's (too long
        for a small model's context, broken text), each text checked by studio/gen_checks/validation.py. An
        empty prompt is the common `empty_text` problem, listed once per task."""
        answer = validate_response(self.answer(result), prompt=text)
        prompt = [(key, f"prompt: {detail}") for key, detail in validate_prompt(text, max_chars=LONG_PROMPT_CHARS)
                  if key not in ("empty_prompt", "unfilled_placeholder")]
        return answer + prompt

    def combine(self, votes: Sequence[Vote]) -> tuple[str, float]:
        """The most recent answer (votes come oldest first); agreement: the share of answers equal to it (after
        collapsing whitespace): how much the experts' answers differ is measured by the quality checks."""
        latest = votes[-1][1]
        same = sum(self.key(t) == self.key(latest) for _, t in votes)
        return latest, same / len(votes)

    def key(self, target: Any) -> Any:
        return normalise(target)

    def target_text(self, target: Any) -> str:
        text = normalise(target)
        return text if len(text) <= 80 else text[:79] + "…"

    def decision_target(self, label: Any) -> str:
        """A replacement answer (another annotator's, or a corrected one): non-empty text."""
        if not isinstance(label, str) or not label.strip():
            raise DataError(f"A replacement answer must be non-empty text; got {str(label)[:80]!r}.",
                            hint="pick another annotator's answer, or write the corrected answer")
        return label

    # -- curation ----------------------------------------------------------------------------------------------
    def with_task_data(self, curated: pd.DataFrame, tasks: pd.DataFrame, *, group_field: str = "") -> pd.DataFrame:
        """Adds `context` (the config's second <Text>, "" when none) and `group` (the task data's `group_field`, e.g.
        the intent, for evaluation per group; "" when the task has none)."""
        import json

        data = tasks.set_index("task_id")["data"].map(lambda raw: json.loads(raw) if raw else {})
        rows = data.reindex(curated["task_id"].to_numpy())
        out = curated.copy()
        field = self.schema.context_field
        out["context"] = [str(d.get(field) or "") if field and isinstance(d, dict) else "" for d in rows]
        out["group"] = [str(d.get(group_field) or "") if group_field and isinstance(d, dict) else "" for d in rows]
        return out

    def row_classes(self, targets: pd.Series) -> list[list[str]]:
        """No classes: every row is in one stratum (near-duplicate prompts are kept together by the groups)."""
        return [[] for _ in range(len(targets))]

    def encode(self, frame: pd.DataFrame, names: list[str]) -> dict[str, pd.Series]:
        prompts = frame["text"].astype(str)
        answers = frame["response"].astype(str)
        systems = frame["context"].astype(str) if "context" in frame.columns else pd.Series("", index=frame.index)
        groups = frame["group"].astype(str) if "group" in frame.columns else pd.Series("", index=frame.index)
        chats = [messages(p, r, system=s) for p, r, s in zip(prompts, answers, systems)]
        return {"prompt": prompts, "completion": answers,
                "messages": pd.Series(chats, index=frame.index, dtype=object), "group": groups}

    def export_features(self, names: list[str]) -> dict[str, Any]:
        from datasets import List, Value

        return {"prompt": Value("string"), "completion": Value("string"),
                "messages": List({"role": Value("string"), "content": Value("string")}), "group": Value("string")}

    def export_counts(self, encoded: pd.DataFrame, names: list[str]) -> dict[str, int]:
        """Rows per group (intent, ...) when the data has groups; else nothing (there are no classes)."""
        groups = encoded["group"].astype(str) if "group" in encoded.columns else pd.Series(dtype=str)
        groups = groups[groups != ""]
        return {str(k): int(v) for k, v in groups.value_counts().sort_index().items()}

    def card_columns(self) -> str:
        return ("`prompt` and `completion` (the request and the expert's answer: TRL's prompt-completion format), "
                "`messages` (the same pair as a chat: user then assistant turn, a system turn first when the task "
                "has a context) and `group` (e.g. the intent, empty when the data has none)")

    # -- import ---------------------------------------------------------------------------------------------------
    def import_target(self, value: Any, text: str, *, row: int) -> str | None:
        """An answer cell: text, or None when empty (the prompt arrives unanswered). Bytes or other non-text values
        are refused (a bytes cell would otherwise become its Python repr)."""
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return None
        if not isinstance(value, str):
            raise DataError(f"row {row}: the answer is {type(value).__name__}, not text.",
                            hint="decode the column to UTF-8 text before importing")
        return value if value.strip() else None

    # -- predict, push -------------------------------------------------------------------------------------------
    def predict(self, predictor: Any, texts: list[str], *, progress: Any = None) -> Any:
        """(drafts, mean token log-probability of each) from a training.generate Generator."""
        out = predictor.generate(texts, progress=progress)
        return out.texts, out.mean_logprobs

    def from_output(self, output: Any, texts: list[str]) -> tuple[list[Any], np.ndarray]:
        """Drafts and their confidence: exp(mean token log-probability), the geometric mean probability of the
        draft's tokens, as a two-way row [(1 + c) / 2, (1 - c) / 2] (see TaskKind.from_output); Label Studio
        gets it as the prediction score."""
        drafts, logprobs = output
        confidence = np.exp(np.clip(np.asarray(logprobs, dtype=float), -50.0, 0.0))
        return list(drafts), margin_rows(confidence)

    def result(self, target: Any) -> list[dict[str, Any]]:
        return [{"from_name": self.schema.from_name, "to_name": self.schema.to_name, "type": "textarea",
                 "value": {"text": [str(target)]}}]
