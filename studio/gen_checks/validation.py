"""Validation of one prompt or one response, for the snapshot's validation report: pure functions on one text.

Each returns a list of (problem_key, detail) pairs, empty when the text is fine; VALIDATION_PROBLEMS says what
every key means. They read a single text (no data-set statistics), so a sync can run them row by row.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Callable, Collection

from studio.gen_checks.text import find_placeholders

#: problem_key -> what it means, for the validation report's legend.
VALIDATION_PROBLEMS: dict[str, str] = {
    "empty_response": "the response is empty or whitespace only",
    "empty_prompt": "the prompt is empty or whitespace only",
    "response_equals_prompt": "the response repeats the prompt (same text after trimming and case-folding)",
    "unfilled_placeholder": "a template slot was left unfilled: {{...}}, {name}, ${name}, [PLACEHOLDER] or "
                            "<name> (the detail lists which)",
    "prompt_too_long": "the prompt is longer than the character or token budget",
    "invalid_unicode": "the text cannot be written as UTF-8 (a lone surrogate) or holds U+FFFD, the mark of "
                       "bytes that were decoded with errors",
    "control_characters": "the text holds control characters other than tab, newline and carriage return",
}

_ALLOWED_CONTROLS = frozenset("\t\n\r")


def _as_text(value: object) -> tuple[str, list[tuple[str, str]]]:
    """The value as str, and an invalid_unicode problem when it was bytes that are not UTF-8."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8"), []
        except UnicodeDecodeError as exc:
            return bytes(value).decode("utf-8", errors="replace"), [
                ("invalid_unicode", f"not UTF-8: byte 0x{value[exc.start]:02x} at offset {exc.start}")]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "", []
    return str(value), []


def _codepoints(chars: list[tuple[int, str]], limit: int = 5) -> str:
    shown = ", ".join(f"U+{ord(c):04X} at {i}" for i, c in chars[:limit])
    return shown + (f" and {len(chars) - limit} more" if len(chars) > limit else "")


def encoding_problems(text: object) -> list[tuple[str, str]]:
    """invalid_unicode (lone surrogates, U+FFFD, bytes that are not UTF-8) and control_characters."""
    s, problems = _as_text(text)
    surrogates = [(i, c) for i, c in enumerate(s) if 0xD800 <= ord(c) <= 0xDFFF]
    if surrogates:
        problems.append(("invalid_unicode", f"lone surrogate(s) {_codepoints(surrogates)}: not encodable as UTF-8"))
    replaced = [(i, c) for i, c in enumerate(s) if c == "\ufffd"]
    if replaced and not problems:
        problems.append(("invalid_unicode", f"replacement character(s) {_codepoints(replaced)}: the text was "
                                            "decoded with errors somewhere upstream"))
    controls = [(i, c) for i, c in enumerate(s)
                if unicodedata.category(c) == "Cc" and c not in _ALLOWED_CONTROLS]
    if controls:
        problems.append(("control_characters", _codepoints(controls)))
    return problems


def placeholder_problems(text: object, *, allowed: Collection[str] = ()) -> list[tuple[str, str]]:
    """unfilled_placeholder with the slots found (each once, in order), unless all are in `allowed`."""
    s, _ = _as_text(text)
    slots = list(dict.fromkeys(slot for _, slot in find_placeholders(s, allowed=frozenset(allowed))))
    if not slots:
        return []
    shown = ", ".join(slots[:8]) + (f" and {len(slots) - 8} more" if len(slots) > 8 else "")
    return [("unfilled_placeholder", shown)]


def validate_response(response: object, *, prompt: object = None,
                      allowed_placeholders: Collection[str] = ()) -> list[tuple[str, str]]:
    """Problems of one response: empty_response, response_equals_prompt (when `prompt` is given),
    unfilled_placeholder (slots not in allowed_placeholders), invalid_unicode, control_characters."""
    s, problems = _as_text(response)
    if not s.strip():
        return [("empty_response", "no text" if not s else f"{len(s)} whitespace character(s) only"), *problems]
    if prompt is not None:
        p, _ = _as_text(prompt)
        if p.strip() and " ".join(s.split()).casefold() == " ".join(p.split()).casefold():
            problems.append(("response_equals_prompt", "the response is the prompt, copied"))
    problems += placeholder_problems(s, allowed=allowed_placeholders)
    problems += [pr for pr in encoding_problems(response) if pr not in problems]
    return problems


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: about 4 characters per token, the usual rule of thumb for English BPE
    vocabularies (pass `count_tokens` for the model's real count)."""
    return math.ceil(len(text) / 4)


def validate_prompt(prompt: object, *, max_chars: int | None = None, max_tokens: int | None = None,
                    count_tokens: Callable[[str], int] | None = None,
                    allowed_placeholders: Collection[str] = ()) -> list[tuple[str, str]]:
    """Problems of one prompt: empty_prompt, prompt_too_long (over max_chars characters, or over max_tokens tokens
    by `count_tokens`, else by `estimate_tokens`), unfilled_placeholder, invalid_unicode, control_characters."""
    for name, value in (("max_chars", max_chars), ("max_tokens", max_tokens)):
        if value is not None and value < 1:
            raise ValueError(f"{name} = {value!r} is invalid: expected a positive budget or None (no limit)")
    s, problems = _as_text(prompt)
    if not s.strip():
        return [("empty_prompt", "no text" if not s else f"{len(s)} whitespace character(s) only"), *problems]
    if max_chars is not None and len(s) > max_chars:
        problems.append(("prompt_too_long", f"{len(s)} characters > budget {max_chars}"))
    if max_tokens is not None:
        tokens = count_tokens(s) if count_tokens is not None else estimate_tokens(s)
        if tokens > max_tokens:
            how = "tokens" if count_tokens is not None else "tokens (estimated at 4 characters each)"
            problems.append(("prompt_too_long", f"{tokens} {how} > budget {max_tokens}"))
    problems += placeholder_problems(s, allowed=allowed_placeholders)
    problems += [pr for pr in encoding_problems(prompt) if pr not in problems]
    return problems
