"""Span label quality: planted type and boundary errors are found, surface-form conflicts listed, the token
learner's out-of-sample probabilities are out of sample, uncertainty orders texts, word vectors cover every word."""

from __future__ import annotations

import numpy as np
import pytest

from studio.errors import ConfigError, DataError
from studio.span_learner import (
    UNCERTAINTY,
    TokenLearner,
    out_of_sample_word_probs,
    uncertainty,
)
from studio.span_quality import SpanQualityConfig, run_span_quality, surface_form_table
from studio.spans import bio_tag_names, spans_to_tags, word_offsets

TYPES = ["person", "location"]
NAMES = bio_tag_names(TYPES)
PEOPLE = ["Alice Smith", "Bob Jones", "Carla Diaz", "Dev Patel", "Emma Stone", "Frank Ocean"]
PLACES = ["Paris", "Rome", "New York", "Lima", "Oslo", "Cairo"]


def _span(text: str, part: str, label: str, start_at: int = 0) -> dict:
    start = text.index(part, start_at)
    return {"start": start, "end": start + len(part), "label": label, "text": part}


def _corpus(n: int, seed: int) -> tuple[list[str], list[list[dict]]]:
    rng = np.random.default_rng(seed)
    texts, spans = [], []
    for i in range(n):
        person, place = PEOPLE[rng.integers(len(PEOPLE))], PLACES[rng.integers(len(PLACES))]
        if i % 3 == 2:
            text = f"the weather was fine today {i}"
            texts.append(text)
            spans.append([])
            continue
        text = f"yesterday {person} flew to {place} with friends ."
        texts.append(text)
        spans.append([_span(text, person, "person"), _span(text, place, "location")])
    return texts, spans


def _probs_from(texts: list[str], spans: list[list[dict]], seed: int) -> list[np.ndarray]:
    """Hand-made 'model' probabilities that know the true tags: 0.55-0.95 on the true tag, the rest spread."""
    rng = np.random.default_rng(seed)
    out = []
    for text, s in zip(texts, spans):
        tags = spans_to_tags(word_offsets(text), s, TYPES)
        p = rng.dirichlet(np.ones(len(NAMES)), size=len(tags))
        top = rng.uniform(0.55, 0.95, size=len(tags))
        p *= (1 - top)[:, None] / p.sum(axis=1, keepdims=True)
        p[np.arange(len(tags)), tags] += top
        out.append(p / p.sum(axis=1, keepdims=True))
    return out


@pytest.fixture(scope="module")
def planted():
    texts, truth = _corpus(60, seed=1)
    probs = _probs_from(texts, truth, seed=2)
    given = [list(s) for s in truth]
    swap, boundary = 0, 3  # text 0: person labeled location; text 3: location span one word wider
    person, place = truth[swap][0], truth[boundary][1]
    given[swap] = [dict(person, label="location"), truth[swap][1]]
    wider = _span(texts[boundary], "to " + place["text"], "location")
    given[boundary] = [truth[boundary][0], wider]
    report = run_span_quality(texts, given, TYPES, word_probs=probs, config=SpanQualityConfig(seed=0))
    return texts, truth, given, report, swap, boundary


def test_planted_type_swap_and_boundary_error_are_flagged_first(planted):
    _, _, _, report, swap, boundary = planted
    rows = report.sentences.set_index("task_index")
    assert rows.loc[swap, "is_issue"] and rows.loc[boundary, "is_issue"]
    assert set(report.sentences.nsmallest(2, "score")["task_index"]) == {swap, boundary}
    assert rows.loc[swap, "kind"] == "type"
    assert rows.loc[boundary, "kind"] == "boundary"
    # The clean texts are left alone: at most a couple of false alarms among 58.
    assert report.sentences["is_issue"].sum() <= 4


def test_suggested_spans_undo_the_planted_errors(planted):
    _, truth, _, report, swap, boundary = planted
    rows = report.sentences.set_index("task_index")
    for i in (swap, boundary):
        got = {(s["start"], s["end"], s["label"]) for s in rows.loc[i, "suggested_spans"]}
        assert got == {(s["start"], s["end"], s["label"]) for s in truth[i]}
    words = report.tokens[(report.tokens["task_index"] == boundary) & report.tokens["studio_issue"]]
    place = next(s for s in truth[boundary] if s["label"] == "location")["text"]
    # "to" leaves the span and the place's first word becomes its B- word again; nothing else changes.
    assert words["word"].tolist() == ["to", place.split()[0]]
    assert words["suggested_tag"].tolist() == ["O", "B-location"]
    worst = rows.loc[swap, "worst_words"][0]
    assert worst["given"] == "B-location" and worst["suggested"] == "B-person"


def test_report_carries_plain_cleanlab_beside_the_studio(planted):
    _, _, _, report, swap, _ = planted
    rows = report.sentences.set_index("task_index")
    assert {"cleanlab_score", "cleanlab_issue"} <= set(report.sentences.columns)
    assert rows.loc[swap, "cleanlab_score"] < rows["cleanlab_score"].median()
    assert 0 < report.threshold < 1 and 0 <= report.error_rate <= 1


def test_boundary_table_names_the_wider_span(planted):
    texts, _, given, report, _, boundary = planted
    hit = report.boundaries[report.boundaries["task_index"] == boundary]
    assert len(hit) == 1
    row = hit.iloc[0]
    assert row["change"] == "narrower"  # the model's span is narrower than the given one
    assert row["given_text"].startswith("to ") and not row["model_text"].startswith("to ")
    assert row["score"] < 0.5


def test_surface_form_table_lists_only_forms_with_two_types():
    texts = ["I saw Paris today", "paris is big", "We met Paris Hilton", "Paris again", "Rome is old"]
    spans = [[_span(texts[0], "Paris", "location")], [_span(texts[1], "paris", "location")],
             [_span(texts[2], "Paris", "person")], [_span(texts[3], "Paris", "location")],
             [_span(texts[4], "Rome", "location")]]
    table = surface_form_table(texts, spans, TYPES)
    assert table["surface"].tolist() == ["paris"]
    row = table.iloc[0]
    assert row["types"] == {"location": 3, "person": 1}
    assert row["majority"] == "location" and row["tasks"] == [0, 1, 2, 3] and row["minority_tasks"] == [2]


def test_wrong_word_probs_shape_names_the_text():
    texts, spans = _corpus(6, seed=0)
    probs = _probs_from(texts, spans, seed=0)
    probs[4] = probs[4][:, :3]
    with pytest.raises(DataError, match=r"word_probs\[4\]"):
        run_span_quality(texts, spans, TYPES, word_probs=probs)
    with pytest.raises(ConfigError, match="threshold"):
        SpanQualityConfig(threshold=2.0)
    assert SpanQualityConfig.from_dict({"threshold": "0.4"}).threshold == 0.4  # as from the environment
    with pytest.raises(ConfigError, match="Did you mean 'copies'"):
        SpanQualityConfig.from_dict({"copie": 2})


def test_importing_the_span_modules_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, studio.span_quality, studio.span_learner, studio.token_embeddings; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the token learner ------------------------------------------------------------------------------------------

def _vectors(texts: list[str], spans: list[list[dict]], seed: int) -> tuple[list[np.ndarray], list[list[int]]]:
    """Word vectors that carry the tag (a mean per tag) plus noise: a learnable problem."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(len(NAMES), 16))
    vecs, tags = [], []
    for text, s in zip(texts, spans):
        t = spans_to_tags(word_offsets(text), s, TYPES)
        vecs.append((means[t] + rng.normal(scale=0.8, size=(len(t), 16))).astype(np.float32))
        tags.append(t)
    return vecs, tags


def test_out_of_sample_word_probs_shapes_and_no_leak():
    texts, spans = _corpus(40, seed=3)
    vecs, tags = _vectors(texts, spans, seed=4)
    probs = out_of_sample_word_probs(vecs, tags, len(NAMES), texts=texts, folds=4, seed=0)
    assert [p.shape for p in probs] == [(len(t), len(NAMES)) for t in tags]
    assert all(np.allclose(p.sum(axis=1), 1) for p in probs)
    flat_y, flat_p = np.concatenate(tags), np.concatenate(probs)
    assert (flat_p.argmax(axis=1) == flat_y).mean() > 0.9 > (flat_y == 0).mean()
    # Text 0's probabilities come from a model that never saw text 0: relabeling it changes none of them.
    relabeled = [list(t) for t in tags]
    relabeled[0] = [3] * len(relabeled[0])
    again = out_of_sample_word_probs(vecs, relabeled, len(NAMES), texts=texts, folds=4, seed=0)
    np.testing.assert_allclose(again[0], probs[0])
    assert not np.allclose(np.concatenate(again[1:]), np.concatenate(probs[1:]))


def test_token_learner_checks_its_input():
    texts, spans = _corpus(8, seed=5)
    vecs, tags = _vectors(texts, spans, seed=6)
    learner = TokenLearner(len(NAMES)).fit(vecs, tags, texts=texts)
    assert [p.shape for p in learner.predict_word_probs(vecs[:2], texts=texts[:2])] == \
        [(len(tags[0]), len(NAMES)), (len(tags[1]), len(NAMES))]
    with pytest.raises(DataError, match="texts"):
        learner.predict_word_probs(vecs[:2])  # fitted with shape features, asked without
    with pytest.raises(DataError, match="text 1 has"):
        TokenLearner(len(NAMES)).fit(vecs[:2], [tags[0], tags[1][:-1]])


def test_uncertainty_orders_texts():
    sure = np.array([[0.98, 0.01, 0.01]] * 4)
    one_doubt = np.vstack([sure[:3], [[0.4, 0.35, 0.25]]])
    all_doubt = np.array([[0.4, 0.35, 0.25]] * 4)
    probs = [sure, one_doubt, all_doubt]
    for method in UNCERTAINTY:
        u = uncertainty(probs, method=method)
        assert u.shape == (3,)
        assert u[0] < u[1] <= u[2], method
    assert uncertainty(probs, method="mean_margin")[1] < uncertainty(probs, method="mean_margin")[2]
    assert uncertainty([np.zeros((0, 3))], method="min_margin")[0] == 0.0
    with pytest.raises(ConfigError, match="Did you mean 'min_margin'"):
        uncertainty(probs, method="min_margn")


# --- word vectors -----------------------------------------------------------------------------------------------

def test_windows_cover_every_word_within_budget():
    from studio.token_embeddings import _owner_window, _windows

    counts = [1, 3, 2, 9, 1, 1, 2, 4, 1, 1, 1, 2]
    windows = _windows(counts, 6)
    assert windows[0][0] == 0 and windows[-1][1] == len(counts)
    assert all(a < b for a, b in windows) and all(n[0] < m[0] for n, m in zip(windows, windows[1:]))
    assert all(sum(counts[a:b]) <= 6 or b - a == 1 for a, b in windows)
    owner = _owner_window(windows, len(counts))
    assert all(windows[k][0] <= w < windows[k][1] for w, k in enumerate(owner))


def test_encode_words_one_row_per_word_also_past_max_length(tmp_path):
    from studio.token_embeddings import encode_words

    long = " ".join(f"Word{i} in Paris ," for i in range(12))  # 48 words, far more than 16 sub-tokens
    texts = ["Empire State Building = ESB .", "@paulwalk It's the view", long]
    vecs = encode_words(texts, max_length=16)
    assert [v.shape for v in vecs] == [(len(word_offsets(t)), 384) for t in texts]
    assert all(np.isfinite(v).all() and (np.abs(v).sum(axis=1) > 0).all() for v in vecs)
    # The same word in different windows reads its own context, not a copy of another window's.
    paris = [w for w, (a, b) in enumerate(word_offsets(long)) if long[a:b] == "Paris"]
    assert not np.allclose(vecs[2][paris[0]], vecs[2][paris[-1]])
    cached = encode_words(texts, max_length=16, cache_dir=tmp_path)
    again = encode_words(texts, max_length=16, cache_dir=tmp_path)
    for v, c, a in zip(vecs, cached, again):
        np.testing.assert_allclose(c, v, atol=1e-5)
        np.testing.assert_array_equal(a, c)
    assert list((tmp_path / "words").glob("*.npz"))
