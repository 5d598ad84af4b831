"""Agreement between span annotations: the consensus of several annotators, per-type agreement, each
annotator against the consensus, and entity precision / recall / F1. Pure functions, no I/O.

Matching (see studio/spans.py for the span contract): two spans match *exactly* when start, end and label are
equal; *partially* when the labels are equal and the offsets overlap. Partial matches are one-to-one (a largest
pairing), so one long span over two short ones counts once and every F1 stays in [0, 1].
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from itertools import combinations

import pandas as pd

from studio.errors import DataError, EmptyDataError
from studio.spans import ALL, Span, check_span


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
