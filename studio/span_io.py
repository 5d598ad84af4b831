"""Spans in and out: CoNLL/BIO files, span cells of imported rows, and Label Studio ``<Labels>`` results.

    sentences = read_conll("train.conll")            # [(tokens, tags), ...]
    records = conll_to_records(sentences)            # [{"text": "tokens joined by spaces", "spans": [...]}]
    spans = spans_from_value(row["spans"], row["text"], row=i)
    result = spans_result(spans, from_name="label", to_name="text")   # -> Label Studio result items
    spans = spans_from_result(annotation["result"], from_name="label")

Spans follow the contract of `studio.spans`. Only `read_conll` touches the disk.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from studio.errors import DataError, EmptyDataError
from studio.spans import Span, check_span, tags_to_spans

_TAG = re.compile(r"O|[BI]-\S+")
_DOCSTART = "-DOCSTART-"
_ASCII_SPACE = " \t\r\f\v"
_SHAPES = ('spans are a list (or its JSON string) of {"start": 0, "end": 5, "label": "person"}, '
           '{"start": 0, "end": 5, "labels": ["person"]} or [0, 5, "person"]; end is exclusive')


def _fields(line: str) -> list[str]:
    # A tab-separated line splits on tabs only, so a token holding Unicode whitespace (no-break space, U+3000)
    # stays whole instead of being silently cut; other lines split on ASCII spaces.
    parts = line.split("\t") if "\t" in line else re.split(r"[ \r\f\v]+", line)
    return [p.strip(_ASCII_SPACE) for p in parts if p.strip(_ASCII_SPACE)]


def read_conll(path: str | Path) -> list[tuple[list[str], list[str]]]:
    """(tokens, tags) per sentence of a CoNLL / BIO file, in file order.

    One "token tag" line per token (tab-separated, or space-separated when it has no tab; with more columns, as
    CoNLL-2003's four, the first is the token and the last the tag); a blank line ends a sentence; -DOCSTART-
    lines are skipped. Tags are O, B-<type> or I-<type>. Raises DataError (file, line number, line) for a broken
    line, DataError (byte offset) for non-UTF-8 bytes, EmptyDataError when the file holds no sentence.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"CoNLL file {path} does not exist.", hint="check the path") from None
    except OSError as exc:
        raise DataError(f"CoNLL file {path} cannot be read: {exc}.",
                        hint="check the path and its permissions") from None
    try:
        content = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(f"CoNLL file {path} is not UTF-8: byte 0x{raw[exc.start]:02x} at byte offset {exc.start} "
                        f"(line {line}) cannot be decoded.",
                        hint="re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 in.conll > out.conll)") from None
    sentences: list[tuple[list[str], list[str]]] = []
    tokens: list[str] = []
    tags: list[str] = []
    # split("\n"), not splitlines(): tweets hold \x1c, \x85 or \u2028 inside tokens, which splitlines() breaks on.
    for number, line in enumerate(content.split("\n"), start=1):
        fields = _fields(line)
        if not fields or fields[0] == _DOCSTART:
            if tokens:
                sentences.append((tokens, tags))
            tokens, tags = [], []
            continue
        if len(fields) < 2:
            raise DataError(f"CoNLL file {path}, line {number}: {line!r} has one field; expected 'token tag'.",
                            hint="give every token its tag (O outside entities), separated by a tab or spaces; "
                                 "leave an empty line between sentences")
        if not _TAG.fullmatch(fields[-1]):
            raise DataError(f"CoNLL file {path}, line {number}: {line!r} ends in tag {fields[-1]!r}; expected O, "
                            "B-<type> or I-<type> as the last field.",
                            hint="write tags in BIO form (BIOES: S- -> B-, E- -> I-; 'B_PER' -> 'B-PER') and "
                                 "put the tag last")
        tokens.append(fields[0])
        tags.append(fields[-1])
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise EmptyDataError(f"CoNLL file {path} holds no sentence.",
                             hint="expected 'token tag' lines, with an empty line between sentences")
    return sentences


def conll_to_records(sentences: Sequence[tuple[Sequence[str], Sequence[str]]]) -> list[dict]:
    """(tokens, tags) sentences -> [{"text": tokens joined by single spaces, "spans": [...]}], one per sentence.

    Spans are character offsets into that text, one per BIO entity; an I- tag after O or after another type
    starts an entity (as seqeval does). Every token boundary is a word boundary of `studio.spans.word_offsets`.
    """
    records = []
    for n, (tokens, tags) in enumerate(sentences):
        if len(tokens) != len(tags):
            raise DataError(f"sentence {n} has {len(tokens)} tokens but {len(tags)} tags.",
                            hint="give exactly one tag per token")
        for token, tag in zip(tokens, tags):
            if not isinstance(token, str) or not token or not isinstance(tag, str) or not _TAG.fullmatch(tag):
                raise DataError(f"sentence {n}: token {token!r} with tag {tag!r}: expected a non-empty token and a "
                                "tag O, B-<type> or I-<type>.", hint="read the file with read_conll")
        offsets, position = [], 0
        for token in tokens:
            offsets.append((position, position + len(token)))
            position += len(token) + 1
        text = " ".join(tokens)
        records.append({"text": text, "spans": tags_to_spans(text, offsets, list(tags))})
    return records


def _offset(value: Any, *, where: str, field: str) -> int:
    if isinstance(value, Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, Real) and not isinstance(value, bool) and float(value).is_integer():
        return int(value)  # pandas turns int columns with gaps into floats (3.0)
    raise DataError(f"{where}: {field} = {value!r} is not a character offset (an integer).", hint=_SHAPES)


def _labels(item: dict, *, where: str) -> list[str]:
    if "label" in item:
        labels = [item["label"]]
    elif "labels" in item:
        labels = item["labels"]
        labels = labels.tolist() if hasattr(labels, "tolist") else labels
        if isinstance(labels, str) or not isinstance(labels, (list, tuple)):
            labels = [labels]
    else:
        alias = next((k for k in ("entity_group", "entity", "type", "tag") if k in item), None)
        fix = f"rename {alias!r} to 'label'" if alias else _SHAPES
        raise DataError(f"{where}: {item!r:.120} has no 'label' or 'labels'; it has keys {sorted(item)}.", hint=fix)
    if not labels or not all(isinstance(x, str) and x for x in labels):
        raise DataError(f"{where}: labels {labels!r} are not entity type names (non-empty strings).", hint=_SHAPES)
    return list(labels)


def spans_from_value(value: Any, text: str, *, row: int) -> list[Span]:
    """The spans of one imported row, from its spans cell; [] for an empty cell (None, NaN, "", []).

    value: a list (or its JSON string) of dicts with start, end and label (or Label Studio's "labels": [..],
    one span per label), or of [start, end, label] lists. A stored "text" and "score" are kept; a missing text
    is taken from `text` at the offsets. Offsets are not checked against the text here: `validate_spans` does.
    Raises DataError naming `row` when the value is malformed.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DataError(f"row {row}: spans {value[:80]!r} is not valid JSON ({exc.msg} at character {exc.pos}).",
                            hint=_SHAPES) from None
        if value is None:
            return []
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()  # parquet cells arrive as numpy arrays
    if not isinstance(value, (list, tuple)):
        raise DataError(f"row {row}: spans = {value!r:.120} is a {type(value).__name__}, expected a list of spans.",
                        hint=_SHAPES)
    spans: list[Span] = []
    for i, item in enumerate(value):
        where = f"row {row}, span {i}"
        if isinstance(item, dict):
            if "start" not in item or "end" not in item:
                raise DataError(f"{where}: {item!r:.120} lacks 'start' or 'end'; it has keys {sorted(item)}.",
                                hint=_SHAPES)
            start, end = _offset(item["start"], where=where, field="start"), _offset(item["end"], where=where,
                                                                                      field="end")
            labels = _labels(item, where=where)
        elif isinstance(item, (list, tuple)) and len(item) == 3:
            start, end = _offset(item[0], where=where, field="start"), _offset(item[1], where=where, field="end")
            labels = _labels({"label": item[2]}, where=where)
        else:
            raise DataError(f"{where}: {item!r:.120} is not a span.", hint=_SHAPES)
        stored = item.get("text") if isinstance(item, dict) else None
        for label in labels:
            span: Span = {"start": start, "end": end, "label": label,
                          "text": str(stored) if stored is not None else text[max(start, 0):max(end, 0)]}
            if isinstance(item, dict) and item.get("score") is not None:
                span["score"] = float(item["score"])
            spans.append(span)
    return spans


def spans_result(spans: Sequence[Span], *, from_name: str, to_name: str) -> list[dict]:
    """Label Studio result items (annotation or prediction) for spans: one ``"type": "labels"`` item per span.

    from_name / to_name: the <Labels> and <Text> tag names of the labeling config. A span's "score" goes on its
    item (Label Studio reads per-region scores there).
    """
    items = []
    for i, span in enumerate(spans):
        start, end, label = check_span(span, where=f"span {i}")
        item: dict[str, Any] = {"from_name": from_name, "to_name": to_name, "type": "labels",
                                "value": {"start": start, "end": end, "text": str(span.get("text", "")),
                                          "labels": [label]}}
        if span.get("score") is not None:
            item["score"] = float(span["score"])
        items.append(item)
    return items


def spans_from_result(result: Sequence[dict], *, from_name: str) -> list[Span]:
    """Spans of a Label Studio result list, in its order: the "labels" items whose from_name matches.

    An item with several labels gives one span per label; an item's "score" goes on its spans. Other items
    (other tags, relations, choices) are skipped. Without a value.text the span has no "text" key, so
    `validate_spans` does not report a mismatch; `clean_spans` sets it from the offsets.
    """
    spans: list[Span] = []
    for i, item in enumerate(result):
        if not isinstance(item, dict) or item.get("type") != "labels" or item.get("from_name") != from_name:
            continue
        value = item.get("value")
        where = f"result item {i} (id {item.get('id')!r})"
        if not isinstance(value, dict) or "start" not in value or "end" not in value:
            raise DataError(f"{where}: value {value!r:.120} lacks start/end character offsets.",
                            hint="span results need a <Labels> tag on a <Text> object; check the labeling config")
        start, end = _offset(value["start"], where=where, field="start"), _offset(value["end"], where=where,
                                                                                   field="end")
        for label in _labels({"labels": value.get("labels", [])}, where=where):
            span: Span = {"start": start, "end": end, "label": label}
            if value.get("text") is not None:
                span["text"] = str(value["text"])
            if item.get("score") is not None:
                span["score"] = float(item["score"])
            spans.append(span)
    return spans
