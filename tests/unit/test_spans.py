"""Spans: validation, cleaning, BIO round trip, consensus, agreement, annotator quality and entity metrics, each on
hand-built examples whose answers were worked out by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from studio.errors import DataError, EmptyDataError
from studio.span_agreement import annotator_span_quality, consensus_spans, span_agreement, span_metrics
from studio.spans import (
    SPAN_PROBLEMS,
    bio_tag_names,
    clean_spans,
    spans_to_tags,
    tags_to_spans,
    validate_spans,
    word_offsets,
)

TEXT = "Alice met Bob in Paris today."  # Alice 0-5, met 6-9, Bob 10-13, in 14-16, Paris 17-22, today 23-28
TYPES = ["person", "location"]


def span(start: int, end: int, label: str, text: str | None = None, **extra: object) -> dict:
    out = {"start": start, "end": end, "label": label, **extra}
    if text is not None:
        out["text"] = text
    return out


def test_a_clean_annotation_has_no_problem() -> None:
    spans = [span(0, 5, "person", "Alice"), span(10, 13, "person", "Bob"), span(17, 22, "location")]
    assert validate_spans(TEXT, spans, TYPES) == []


@pytest.mark.parametrize(("spans", "problem", "named"), [
    ([span(20, 40, "location")], "span_outside_text", "[20:40] location"),
    ([span(-1, 5, "person")], "span_outside_text", "[-1:5] person"),
    ([span(13, 10, "person")], "span_outside_text", "[13:10] person"),
    ([span(6, 6, "person")], "zero_length_span", "[6:6] person"),
    ([span(0, 5, "person"), span(0, 9, "person")], "overlapping_spans", "[0:9] person 'Alice met'"),
    ([span(10, 13, "person", "Rob")], "span_text_mismatch", "'Rob'"),
    ([span(17, 22, "locaton")], "unknown_entity_type", "Did you mean 'location'?"),
    ([span(9, 13, "person")], "span_whitespace_edge", "[9:13] person ' Bob'"),
])
def test_each_problem_is_reported_alone_and_names_the_span(spans: list[dict], problem: str, named: str) -> None:
    found = validate_spans(TEXT, spans, TYPES)
    assert [p for p, _ in found] == [problem]
    assert named in found[0][1]


def test_problem_table_lists_every_problem_key() -> None:
    assert set(SPAN_PROBLEMS) == {"span_outside_text", "zero_length_span", "overlapping_spans", "span_text_mismatch",
                                  "unknown_entity_type", "span_whitespace_edge"}


def test_a_span_that_is_not_a_span_raises_a_data_error() -> None:
    with pytest.raises(DataError, match="span 1") as err:
        validate_spans(TEXT, [span(0, 5, "person"), {"start": "0", "end": 5, "label": "person"}], TYPES)
    assert err.value.hint


def test_clean_spans_drops_trims_and_resolves_overlaps() -> None:
    spans = [
        span(17, 22, "location", "Pariss"),   # wrong stored text: offsets win
        span(9, 14, "person", score=0.4),     # " Bob " -> Bob, score kept
        span(0, 5, "person"),
        span(0, 9, "person"),                 # overlaps Alice, starts as early and is longer: kept instead
        span(20, 40, "location"),             # outside
        span(6, 6, "person"),                 # empty
        span(23, 28, "date"),                 # unknown type
        span(13, 14, "person"),               # only whitespace
    ]
    assert clean_spans(TEXT, spans, TYPES) == [
        {"start": 0, "end": 9, "label": "person", "text": "Alice met"},
        {"start": 10, "end": 13, "label": "person", "text": "Bob", "score": 0.4},
        {"start": 17, "end": 22, "label": "location", "text": "Paris"},
    ]
    # The report on the same input names what cleaning dropped or changed.
    assert {p for p, _ in validate_spans(TEXT, spans, TYPES)} == set(SPAN_PROBLEMS)


def test_spans_tags_spans_round_trip_with_punctuation_and_scores() -> None:
    text = "Dr. O'Neil flew to New York, then ACME Corp. hired him."
    types = ["person", "location", "corporation"]
    spans = [span(0, 10, "person", "Dr. O'Neil"), span(19, 27, "location", "New York"),
             span(34, 44, "corporation", "ACME Corp.")]
    offsets = word_offsets(text)
    names = bio_tag_names(types)
    tags = [names[i] for i in spans_to_tags(offsets, spans, types)]
    assert tags[:5] == ["B-person", "I-person", "I-person", "I-person", "I-person"]  # Dr . O ' Neil
    assert tags_to_spans(text, offsets, tags) == spans
    scores = [0.9] * len(offsets)
    scores[1] = 0.3
    assert tags_to_spans(text, offsets, tags, scores)[0]["score"] == pytest.approx(0.3)  # weakest word


def test_spans_to_tags_grows_a_span_to_whole_words_and_skips_unknown_types() -> None:
    offsets = word_offsets(TEXT)
    tags = spans_to_tags(offsets, [span(1, 4, "person"), span(17, 22, "date")], TYPES)
    assert tags == [1, 0, 0, 0, 0, 0, 0]  # "Alice" (partly covered) is B-person; "date" is not a type
    assert tags_to_spans(TEXT, offsets, [bio_tag_names(TYPES)[i] for i in tags]) == [span(0, 5, "person", "Alice")]


def test_tags_to_spans_i_after_o_or_other_type_starts_an_entity() -> None:
    text = "a b c d"
    offsets = word_offsets(text)
    got = tags_to_spans(text, offsets, ["I-person", "I-location", "O", "I-location"])
    assert [(s["start"], s["end"], s["label"]) for s in got] == [(0, 1, "person"), (2, 3, "location"),
                                                                   (6, 7, "location")]
    with pytest.raises(DataError, match="4 word offsets but 3 tags"):
        tags_to_spans(text, offsets, ["O", "O", "O"])


def test_consensus_single_annotator_is_their_spans() -> None:
    spans = [span(0, 5, "person", "Alice"), span(17, 22, "location", "Paris")]
    assert consensus_spans([spans]) == (spans, 1.0)


def test_consensus_two_annotators_a_tie_is_not_kept() -> None:
    a = [span(0, 5, "person", "Alice"), span(17, 22, "location", "Paris")]
    b = [span(0, 5, "person", "Alice")]
    assert consensus_spans([a, b]) == ([span(0, 5, "person", "Alice")], 0.5)
    assert consensus_spans([a, list(a)]) == (a, 1.0)


def test_consensus_three_annotators_majority_and_empty_votes() -> None:
    a = [span(0, 5, "person", "Alice"), span(17, 22, "location", "Paris")]
    b = [span(0, 5, "person", "Alice"), span(17, 22, "location", "Paris")]
    c = [span(0, 5, "person", "Alice"), span(17, 28, "location", "Paris today")]
    consensus, agreement = consensus_spans([a, b, c])
    assert consensus == a and agreement == pytest.approx(2 / 3)
    # Two of three say "no entities": that wins.
    assert consensus_spans([a, [], []]) == ([], pytest.approx(2 / 3))
    # Two of four is a tie too.
    assert consensus_spans([a, a, [], []]) == ([], 0.5)


def test_consensus_overlapping_survivors_keep_the_most_voted() -> None:
    short, long_ = span(0, 5, "person", "Alice"), span(0, 9, "person", "Alice met")
    consensus, agreement = consensus_spans([[short, long_], [short, long_], [long_]])
    assert consensus == [long_] and agreement == pytest.approx(1 / 3)
    with pytest.raises(EmptyDataError):
        consensus_spans([])


P, L = "person", "location"


@pytest.fixture()
def annotations() -> pd.DataFrame:
    rows = [
        (1, "a", [span(0, 5, P), span(10, 15, L)]),
        (1, "b", [span(0, 5, P), span(10, 20, L)]),   # same person; location overlaps but differs
        (2, "a", [span(0, 4, P)]),
        (2, "b", []),
        (2, "c", [span(0, 4, P), span(6, 9, L)]),
        (3, "a", [span(0, 3, P)]),                    # a single annotator: no pair
        (4, "a", []),
        (4, "b", []),                                 # both empty: counts for no type
    ]
    return pd.DataFrame(rows, columns=["task_id", "annotator", "spans"])


def test_span_agreement_exact_versus_partial(annotations: pd.DataFrame) -> None:
    table = span_agreement(annotations, [P, L, "product"]).set_index("type")
    assert list(table.index) == [P, L, "product", "all"]
    # person pairs: t1 (a,b)=1, t2 (a,b)=0, (a,c)=1, (b,c)=0 -> 0.5, exact and partial alike
    assert table.loc[P, ["exact_f1", "partial_f1", "n_pairs", "n_spans"]].tolist() == [0.5, 0.5, 4, 4]
    # location pairs: t1 (a,b) exact 0 / partial 1, t2 (a,c)=0, (b,c)=0
    assert table.loc[L, "exact_f1"] == 0.0
    assert table.loc[L, "partial_f1"] == pytest.approx(1 / 3)
    assert table.loc[L, ["n_pairs", "n_spans"]].tolist() == [3, 3]
    # all: t1 2*1/4 | 2*2/4, t2 (a,b) 0, (a,c) 2/3, (b,c) 0; task 4 counts for nothing
    assert table.loc["all", "exact_f1"] == pytest.approx((0.5 + 2 / 3) / 4)
    assert table.loc["all", "partial_f1"] == pytest.approx((1 + 2 / 3) / 4)
    assert table.loc["all", ["n_pairs", "n_spans"]].tolist() == [4, 7]
    assert table.loc["product", "n_pairs"] == 0 and math.isnan(table.loc["product", "exact_f1"])


def test_span_agreement_rejects_bad_frames(annotations: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="spans"):
        span_agreement(annotations.drop(columns="spans"), TYPES)
    with pytest.raises(DataError, match="sharing a"):
        span_agreement(pd.concat([annotations, annotations.iloc[:1]]), TYPES)


def test_annotator_span_quality_against_a_given_consensus(annotations: pd.DataFrame) -> None:
    extra = pd.DataFrame([(99, "d", [span(0, 5, P)])], columns=annotations.columns)  # task without consensus
    consensus = {1: [span(0, 5, P), span(10, 15, L)], 2: [span(0, 4, P)], 4: []}
    table = annotator_span_quality(pd.concat([annotations, extra], ignore_index=True), consensus)
    assert table["annotator"].tolist() == ["a", "c", "b", "d"]  # best first, nothing to judge last
    rows = table.set_index("annotator")
    assert rows.loc["a", ["n_tasks", "n_spans", "exact_f1", "partial_f1"]].tolist() == [3, 3, 1.0, 1.0]
    # b: task 1 person exact, location only partial; task 2 missed the person -> 2*1/5 exact, 2*2/5 partial
    assert rows.loc["b", ["n_tasks", "n_spans"]].tolist() == [3, 2]
    assert rows.loc["b", "exact_f1"] == pytest.approx(0.4) and rows.loc["b", "partial_f1"] == pytest.approx(0.8)
    assert rows.loc["c", "exact_f1"] == pytest.approx(2 / 3)
    assert rows.loc["d", "n_tasks"] == 0 and math.isnan(rows.loc["d", "exact_f1"])


def test_span_metrics_hand_computed() -> None:
    gold = [[span(0, 5, P), span(10, 15, L)], [span(0, 3, P), span(4, 7, P)], []]
    pred = [[span(0, 5, P), span(10, 17, L)], [span(0, 7, P), span(20, 25, L)], [span(1, 2, P), span(3, 4, "misc")]]
    m = span_metrics(gold, pred, [P, L])
    # exact: person tp 1 of 3 predicted / 3 gold; location tp 0 of 2 / 1; "misc" is not a type and is ignored
    assert m["per_type"][P] == pytest.approx({"precision": 1 / 3, "recall": 1 / 3, "f1": 1 / 3, "support": 3})
    assert m["per_type"][L] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["overall"] == pytest.approx({"precision": 0.2, "recall": 0.25, "f1": 2 * 0.2 * 0.25 / 0.45,
                                          "support": 4})
    # partial, one-to-one: [0,7] pairs with one of [0,3] / [4,7] only; [10,17] pairs with [10,15] -> 3 of 5 / 4
    assert m["partial"] == pytest.approx({"precision": 0.6, "recall": 0.75, "f1": 2 * 0.6 * 0.75 / 1.35,
                                          "support": 4})
    perfect = span_metrics(gold, gold, [P, L])
    assert perfect["overall"]["f1"] == 1.0 and perfect["partial"]["f1"] == 1.0
    with pytest.raises(DataError, match="3 gold span lists but 2"):
        span_metrics(gold, pred[:2], [P, L])
