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

Matching, used by agreement, annotator quality and metrics alike: two spans match *exactly* when start, end and
label are equal; they match *partially* when the labels are equal and the offsets overlap. Partial matches are
one-to-one (a largest pairing), so one long span over two short ones counts once and every F1 stays in [0, 1].
Reading files, import cells and Label Studio results into spans lives in `studio.span_io`; its functions are
also reachable here (``studio.spans.spans_from_value`` ...), forwarded lazily.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from itertools import combinations
from numbers import Integral
from typing import TYPE_CHECKING, Any

import pandas as pd

from studio.errors import DataError, EmptyDataError, did_you_mean

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


def consensus_spans(votes: Sequence[Sequence[Span]]) -> tuple[list[Span], float]:
    """(consensus spans, agreement) for one task from M annotators' cleaned span lists (one list each).

    A span (same start, end and label) is in the consensus when MORE than half of the annotators marked it:
    2 of 3 keep it, 1 of 2 or 2 of 4 (a tie) do not, 1 of 1 does. An empty list is a vote for "no entities".
    Overlapping survivors (only possible with uncleaned votes) keep the most voted, then longer, then earlier.
    agreement: share of annotators (in [0, 1]) whose span set is exactly the consensus.
    """
    if len(votes) == 0:
        raise EmptyDataError("consensus_spans got no votes: expected one span list per annotator of the task.",
                             hint="pass [spans_of_annotator_1, spans_of_annotator_2, ...]; [] means no entities")
    sets: list[set[tuple[int, int, str]]] = []
    texts: dict[tuple[int, int, str], str] = {}
    for m, vote in enumerate(votes):
        keys = set()
        for i, span in enumerate(vote):
            key = check_span(span, where=f"annotator {m}, span {i}")
            keys.add(key)
            texts.setdefault(key, str(span.get("text", "")))
        sets.append(keys)
    counts = Counter(key for keys in sets for key in keys)
    ranked = sorted((k for k, c in counts.items() if 2 * c > len(votes)),
                    key=lambda k: (-counts[k], k[0] - k[1], k[0], k[2]))
    chosen: list[tuple[int, int, str]] = []
    for key in ranked:
        if all(key[1] <= c[0] or c[1] <= key[0] for c in chosen):
            chosen.append(key)
    chosen.sort()
    agreement = sum(keys == set(chosen) for keys in sets) / len(votes)
    return [{"start": s, "end": e, "label": lab, "text": texts[(s, e, lab)]} for s, e, lab in chosen], agreement


def _by_label(spans: Sequence[Span], *, where: str) -> dict[str, set[tuple[int, int]]]:
    out: dict[str, set[tuple[int, int]]] = {}
    for i, span in enumerate(spans):
        start, end, label = check_span(span, where=f"{where}, span {i}")
        out.setdefault(label, set()).add((start, end))
    return out


def _partial_matches(a: set[tuple[int, int]], b: set[tuple[int, int]]) -> int:
    """Size of a largest one-to-one pairing of spans of `a` with overlapping spans of `b` (Kuhn's algorithm)."""
    left, right = sorted(a), sorted(b)
    links = [[j for j, (c, d) in enumerate(right) if s < d and c < e] for s, e in left]
    owner = [-1] * len(right)

    def augment(i: int, seen: set[int]) -> bool:
        for j in links[i]:
            if j not in seen:
                seen.add(j)
                if owner[j] < 0 or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return sum(augment(i, set()) for i in range(len(left)))


def _match_counts(a: dict[str, set[tuple[int, int]]], b: dict[str, set[tuple[int, int]]],
                  label: str) -> tuple[int, int, int, int]:
    """(exact matches, partial matches, |a|, |b|) for one label."""
    sa, sb = a.get(label, set()), b.get(label, set())
    return len(sa & sb), _partial_matches(sa, sb), len(sa), len(sb)


def _check_annotations(annotations: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(annotations, pd.DataFrame):
        raise DataError(f"annotations must be a pandas DataFrame, got {type(annotations).__name__}.",
                        hint="build one row per (task, annotator): pd.DataFrame({'task_id', 'annotator', 'spans'})")
    missing = [c for c in ("task_id", "annotator", "spans") if c not in annotations.columns]
    if missing:
        raise DataError(f"annotations lacks column(s) {missing}; it has {list(annotations.columns)}.",
                        hint="expected columns task_id, annotator, spans (a list of span dicts per row)")
    doubled = annotations.duplicated(["task_id", "annotator"], keep=False)
    if doubled.any():
        first = annotations.loc[doubled, ["task_id", "annotator"]].iloc[0].tolist()
        raise DataError(f"annotations has {int(doubled.sum())} rows sharing a (task_id, annotator), e.g. {first}.",
                        hint="keep one annotation per annotator and task (the latest one)")
    frame = annotations[["task_id", "annotator", "spans"]].copy()
    frame["spans"] = [[] if s is None else list(s) for s in frame["spans"]]
    return frame


def span_agreement(annotations: pd.DataFrame, types: Sequence[str]) -> pd.DataFrame:
    """Pairwise inter-annotator agreement on entity spans, per entity type and overall.

    annotations: one row per (task, annotator), columns task_id, annotator, spans (cleaned span list).
    A pair is two annotators of the same task; its F1 is 2 * matches / (|A| + |B|), symmetric in A and B,
    exact or partial (see the module docstring). A pair in which neither marked a span of a type does not
    count for that type ("all": neither marked any span of `types`). Spans of other labels are ignored.
    Returns one row per type in `types`, then "all": type, exact_f1 and partial_f1 (mean over counted pairs,
    in [0, 1], higher = more agreement; NaN when no pair counts), n_pairs, n_spans (spans of that type on
    tasks with two or more annotators).
    """
    frame = _check_annotations(annotations)
    types = list(types)
    rows = {t: {"exact": 0.0, "partial": 0.0, "n_pairs": 0, "n_spans": 0} for t in [*types, ALL]}
    for task_id, group in frame.groupby("task_id", sort=False):
        if len(group) < 2:
            continue
        sets = [_by_label(s, where=f"task {task_id}, annotator {a}") for a, s in zip(group["annotator"],
                                                                                    group["spans"])]
        for t in types:
            n = sum(len(s.get(t, ())) for s in sets)
            rows[t]["n_spans"] += n
            rows[ALL]["n_spans"] += n
        for a, b in combinations(sets, 2):
            total = [0, 0, 0]
            for t in types:
                exact, partial, na, nb = _match_counts(a, b, t)
                if na + nb:
                    rows[t]["exact"] += 2 * exact / (na + nb)
                    rows[t]["partial"] += 2 * partial / (na + nb)
                    rows[t]["n_pairs"] += 1
                total = [total[0] + exact, total[1] + partial, total[2] + na + nb]
            if total[2]:
                rows[ALL]["exact"] += 2 * total[0] / total[2]
                rows[ALL]["partial"] += 2 * total[1] / total[2]
                rows[ALL]["n_pairs"] += 1
    return pd.DataFrame([{"type": t, "exact_f1": r["exact"] / r["n_pairs"] if r["n_pairs"] else math.nan,
                          "partial_f1": r["partial"] / r["n_pairs"] if r["n_pairs"] else math.nan,
                          "n_pairs": r["n_pairs"], "n_spans": r["n_spans"]} for t, r in rows.items()])


def annotator_span_quality(annotations: pd.DataFrame, consensus: dict[int, list[Span]]) -> pd.DataFrame:
    """Per annotator: how well their spans match the consensus of the tasks they labelled.

    annotations: as for `span_agreement`. consensus: task_id -> consensus spans (e.g. from `consensus_spans`);
    tasks missing from it are skipped. The consensus is taken as given, so when it was computed from these
    same annotations each annotator's own vote is part of it and scores lean upward on tasks with few
    annotators. F1 = 2 * matches / (|annotator's spans| + |consensus spans|) pooled over the annotator's tasks
    (all labels), in [0, 1], higher = better; NaN when neither side has a span. Returns annotator, n_tasks,
    n_spans, exact_f1, partial_f1; best (exact_f1) first.
    """
    frame = _check_annotations(annotations)
    rows = []
    for annotator, group in frame.groupby("annotator", sort=False):
        exact = partial = size = n_tasks = n_spans = 0
        for task_id, spans in zip(group["task_id"], group["spans"]):
            if task_id not in consensus:
                continue
            mine = _by_label(spans, where=f"task {task_id}, annotator {annotator}")
            ref = _by_label(consensus[task_id], where=f"consensus of task {task_id}")
            n_tasks += 1
            n_spans += sum(len(s) for s in mine.values())
            for label in mine.keys() | ref.keys():
                e, p, na, nb = _match_counts(mine, ref, label)
                exact, partial, size = exact + e, partial + p, size + na + nb
        rows.append({"annotator": annotator, "n_tasks": n_tasks, "n_spans": n_spans,
                     "exact_f1": 2 * exact / size if size else math.nan,
                     "partial_f1": 2 * partial / size if size else math.nan})
    table = pd.DataFrame(rows, columns=["annotator", "n_tasks", "n_spans", "exact_f1", "partial_f1"])
    return table.sort_values("exact_f1", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def _prf(tp: int, n_pred: int, n_gold: int) -> dict[str, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": n_gold}


def span_metrics(gold: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]], types: Sequence[str]) -> dict:
    """Entity-level precision / recall / F1 of predicted spans against gold spans; the studio's evaluation.

    gold, pred: (N,) span lists, one per text, same order. A true positive is an exact match (start, end,
    label); duplicates count once and labels not in `types` are ignored. Returns {"overall": micro over all
    types, "per_type": {type: ...}, "partial": micro with partial matches (same label, overlapping, one-to-one)},
    each {"precision", "recall", "f1", "support" (gold spans)}; 0.0 where undefined. Equals seqeval's
    entity-level scores (default mode) when spans are word-aligned.
    """
    if len(gold) != len(pred):
        raise DataError(f"span_metrics got {len(gold)} gold span lists but {len(pred)} predicted ones.",
                        hint="pass one span list per text to both, in the same order ([] for no entities)")
    types = list(types)
    counts = {t: [0, 0, 0, 0] for t in types}  # exact tp, partial tp, n_gold, n_pred
    for n, (g, p) in enumerate(zip(gold, pred)):
        sg, sp = _by_label(g, where=f"gold text {n}"), _by_label(p, where=f"predicted text {n}")
        for t in types:
            exact, partial, n_gold, n_pred = _match_counts(sg, sp, t)
            counts[t] = [counts[t][0] + exact, counts[t][1] + partial, counts[t][2] + n_gold, counts[t][3] + n_pred]
    total = [sum(c[k] for c in counts.values()) for k in range(4)]
    return {"overall": _prf(total[0], total[3], total[2]),
            "per_type": {t: _prf(c[0], c[3], c[2]) for t, c in counts.items()},
            "partial": _prf(total[1], total[3], total[2])}
