"""Character spans (named entities) and the word-level BIO tags models train on. Pure functions, no I/O.

The contract every stage shares:

- A span is a dict ``{"start": int, "end": int, "label": str, "text": str}``: character offsets into the task's
  text, ``end`` exclusive, exactly as Label Studio writes ``value.start / value.end / value.text`` of a
  ``<Labels>`` result. A prediction adds ``"score"`` (float in [0, 1], higher = more confident).
- Words are what `word_offsets` cuts a text into: runs of word characters, and every other non-space character
  on its own. Text imported from a pre-tokenised (CoNLL) file is its tokens joined by single spaces, so every
  original token boundary is also a word boundary here.
- Tags are BIO over the entity types in labeling-config order: ``["O", "B-t1", "I-t1", "B-t2", ...]``
  (`bio_tag_names`); a tag id indexes that list.

Agreement, annotator quality and metrics (exact and partial matching) live in `studio.span_agreement`.
Reading files, import cells and Label Studio results into spans lives in `studio.span_io`; its functions are
also reachable here (``studio.spans.spans_from_value`` ...), forwarded lazily.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any


from studio.errors import DataError, did_you_mean

if TYPE_CHECKING:
    from studio.span_io import (  # noqa: F401
        conll_to_records,
        read_conll,
        spans_from_result,
        spans_from_value,
        spans_result,
    )

Span = dict[str, Any]

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)
OUTSIDE = "O"
ALL = "all"

_SPAN_IO = frozenset({"read_conll", "conll_to_records", "spans_from_value", "spans_result", "spans_from_result"})


def __getattr__(name: str) -> Any:
    # studio.span_io imports this module, so it cannot be imported here at load time: forward on first use.
    if name in _SPAN_IO:
        from studio import span_io

        return getattr(span_io, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: problem key -> what it means; the keys `validate_spans` reports.
SPAN_PROBLEMS: dict[str, str] = {
    "span_outside_text": "the span's offsets fall outside the text (start < 0, end past the end, or start > end)",
    "zero_length_span": "the span is empty (start == end)",
    "overlapping_spans": "two spans of the same annotation cover some of the same characters",
    "span_text_mismatch": "the span's stored text differs from the text at its offsets",
    "unknown_entity_type": "the span's label is not an entity type of the labeling config",
    "span_whitespace_edge": "the span starts or ends with whitespace",
}


def word_offsets(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of the words of `text`, in order (end exclusive)."""
    return [(m.start(), m.end()) for m in _WORD.finditer(text or "")]


def bio_tag_names(types: Sequence[str]) -> list[str]:
    """["O", "B-<type>", "I-<type>", ...] for entity types in config order."""
    names = [OUTSIDE]
    for t in types:
        names += [f"B-{t}", f"I-{t}"]
    return names


def spans_to_tags(offsets: Sequence[tuple[int, int]], spans: Sequence[Span], types: Sequence[str]) -> list[int]:
    """(W,) tag ids, one per word: a word that overlaps a span gets its type (B- on the span's first word).

    offsets: word_offsets(text). Spans of a type not in `types` are skipped (the validation report lists them).
    Where spans overlap, the earlier-starting (then longer) span wins; the report lists overlaps too.
    """
    index = {name: i for i, name in enumerate(bio_tag_names(types))}
    tags = [0] * len(offsets)
    for span in sorted(spans, key=lambda s: (int(s["start"]), -int(s["end"]))):
        label = str(span["label"])
        if f"B-{label}" not in index:
            continue
        start, end = int(span["start"]), int(span["end"])
        covered = [w for w, (a, b) in enumerate(offsets) if a < end and b > start and tags[w] == 0]
        for n, w in enumerate(covered):
            tags[w] = index[("B-" if n == 0 else "I-") + label]
    return tags


def tags_to_spans(text: str, offsets: Sequence[tuple[int, int]], tags: Sequence[str],
                  scores: Sequence[float] | None = None) -> list[Span]:
    """Word tags (names, e.g. "B-person") -> character spans over `text`.

    offsets and tags: (W,) each, one per word. An I- tag that does not continue an entity of its type starts
    a new one (as seqeval does by default); any tag that is not B-/I- (e.g. "O") is outside.
    scores: optional (W,) per-word confidence; a span's score is the lowest of its words' (its weakest link).
    """
    if len(tags) != len(offsets) or (scores is not None and len(scores) != len(offsets)):
        got = f"{len(tags)} tags" + ("" if scores is None else f" and {len(scores)} scores")
        raise DataError(f"tags_to_spans got {len(offsets)} word offsets but {got}: expected one of each per word.",
                        hint="cut the text with word_offsets(text) and give one tag (and score) per word")
    spans: list[Span] = []
    current: dict[str, Any] | None = None
    for w, tag in enumerate(tags):
        kind, _, label = str(tag).partition("-")
        continues = current is not None and kind == "I" and label == current["label"]
        if current is not None and not continues:
            spans.append(_close(text, current))
            current = None
        if kind in {"B", "I"} and label and not continues:
            current = {"start": offsets[w][0], "end": offsets[w][1], "label": label, "scores": []}
        if current is not None:
            current["end"] = offsets[w][1]
            if scores is not None:
                current["scores"].append(float(scores[w]))
    if current is not None:
        spans.append(_close(text, current))
    return spans


def _close(text: str, current: dict[str, Any]) -> Span:
    span: Span = {"start": int(current["start"]), "end": int(current["end"]), "label": current["label"],
                  "text": text[current["start"]:current["end"]]}
    if current["scores"]:
        span["score"] = float(min(current["scores"]))
    return span


def check_span(span: Any, *, where: str) -> tuple[int, int, str]:
    """(start, end, label) of one span dict, or DataError naming `where` when it is not a span at all."""
    if not isinstance(span, dict) or not {"start", "end", "label"} <= span.keys():
        raise DataError(f"{where}: {span!r:.120} is not a span: expected a dict with start, end and label.",
                        hint='write spans as {"start": 0, "end": 5, "label": "person", "text": "Alice"}; '
                             "studio.span_io.spans_from_value reads the other usual shapes")
    start, end, label = span["start"], span["end"], span["label"]
    if not (isinstance(start, Integral) and isinstance(end, Integral)) or isinstance(start, bool) \
            or isinstance(end, bool) or not isinstance(label, str) or not label:
        raise DataError(f"{where}: span {span!r:.120} needs integer start/end and a non-empty string label.",
                        hint="character offsets are ints (end exclusive); the label is an entity type name")
    return int(start), int(end), label


def _describe(start: int, end: int, label: str, text: str) -> str:
    return f"[{start}:{end}] {label} {text[max(start, 0):max(end, 0)]!r}"


def validate_spans(text: str, spans: Sequence[Span], types: Sequence[str]) -> list[tuple[str, str]]:
    """(problem, detail) pairs for one annotation's spans over `text`; [] when it is clean.

    problem is a key of `SPAN_PROBLEMS`; detail names the span (offsets, label, text). An out-of-text or empty
    span is only reported as that. Overlaps are reported once per overlapping pair.
    """
    problems: list[tuple[str, str]] = []
    placed: list[tuple[int, int, str]] = []
    for i, span in enumerate(spans):
        start, end, label = check_span(span, where=f"span {i}")
        name = _describe(start, end, label, text)
        if start < 0 or end > len(text) or start > end:
            problems.append(("span_outside_text", f"span {name} does not fit in a text of {len(text)} characters"))
            continue
        if start == end:
            problems.append(("zero_length_span", f"span {name} covers no characters"))
            continue
        placed.append((start, end, label))
        if label not in types:
            problems.append(("unknown_entity_type", (f"span {name}: label {label!r} is not one of "
                                                     f"{list(types)}.{did_you_mean(label, types)}")))
        stored = span.get("text")
        if stored is not None and stored != text[start:end]:
            problems.append(("span_text_mismatch", f"span {name} stores text {stored!r}"))
        if text[start:end] != text[start:end].strip():
            problems.append(("span_whitespace_edge", f"span {name} starts or ends with whitespace"))
    placed.sort()
    for i, (start, end, label) in enumerate(placed):
        for other in placed[i + 1:]:
            if other[0] >= end:
                break
            problems.append(("overlapping_spans", (f"spans {_describe(start, end, label, text)} and "
                                                   f"{_describe(*other, text)} overlap")))
    return problems


def clean_spans(text: str, spans: Sequence[Span], types: Sequence[str]) -> list[Span]:
    """The usable spans of one annotation, sorted by (start, end), none overlapping.

    Drops spans outside the text, empty ones and those of a type not in `types`; trims whitespace off the edges
    (a span of only whitespace is dropped); sets "text" from the offsets (they win over a stored text). Of
    overlapping spans (after trimming) the earlier-starting, then longer, one is kept. Other keys ("score")
    are kept. Nothing is reported here: `validate_spans` on the same input lists what was dropped or changed.
    """
    trimmed: list[Span] = []
    for i, span in enumerate(spans):
        start, end, label = check_span(span, where=f"span {i}")
        if start < 0 or end > len(text) or start >= end or label not in types:
            continue
        piece = text[start:end]
        start, end = start + len(piece) - len(piece.lstrip()), end - (len(piece) - len(piece.rstrip()))
        if start < end:
            trimmed.append({**span, "start": start, "end": end, "label": label, "text": text[start:end]})
    kept: list[Span] = []
    for span in sorted(trimmed, key=lambda s: (s["start"], -s["end"])):
        if not kept or span["start"] >= max(k["end"] for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: (s["start"], s["end"]))
