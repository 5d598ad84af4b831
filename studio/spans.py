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
"""

from __future__ import annotations

import re
from typing import Any, Sequence

Span = dict[str, Any]

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)
OUTSIDE = "O"


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

    An I- tag that does not continue an entity of its type starts a new one (as seqeval does by default).
    scores: optional (W,) per-word confidence; a span's score is the lowest of its words' (its weakest link).
    """
    spans: list[Span] = []
    current: dict[str, Any] | None = None
    for w, tag in enumerate(tags):
        kind, _, label = str(tag).partition("-")
        continues = current is not None and kind == "I" and label == current["label"]
        if current is not None and not continues:
            spans.append(_close(text, current))
            current = None
        if kind in {"B", "I"} and not continues:
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
