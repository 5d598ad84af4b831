"""The predictions push_pool sends: the strategy's order in the score, the model's probability on the result, no
pre-selected answer below the threshold; and prediction_records unchanged for its other callers (send for review).

Offline: hand-made probabilities and embeddings, no Label Studio (tests/integration/test_active_queue.py measures
what the real server serves)."""

import numpy as np
import pandas as pd
import pytest

from studio.active import STRATEGIES
from studio.errors import ConfigError, EmptyDataError
from studio.labeling import parse_labeling_config
from studio.pool import queue_filters, queue_rows, score_pool
from studio.push import prediction_records

XML = ('<View><Text name="text" value="$text"/><Choices name="intent" toName="text">'
       '<Choice value="card"/><Choice value="refund"/><Choice value="other"/></Choices></View>')
NER_XML = ('<View><Labels name="label" toName="text"><Label value="person"/><Label value="location"/></Labels>'
           '<Text name="text" value="$text"/></View>')


def pool_of(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    pool = pd.DataFrame({"task_id": np.arange(100, 100 + n), "text": [f"text {i}" for i in range(n)]})
    probs = rng.dirichlet([0.4, 0.4, 0.4], size=n)
    embeddings = rng.normal(size=(n, 8)).astype(np.float32)
    return pool, probs, embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)


@pytest.mark.parametrize("strategy", [k for k, s in STRATEGIES.items() if s.needs_model] + ["random"])
def test_ascending_score_is_the_strategys_rank_for_every_strategy(strategy):
    schema = parse_labeling_config(XML)
    pool, probs, embeddings = pool_of(40)
    scored = score_pool(pool, probs, schema.kind, strategy=strategy, n=8, embeddings=embeddings,
                        model_version="fast-x", seed=3)
    rows = queue_rows(scored, threshold=0.5)
    records = prediction_records(rows, schema, model_version="fast-x")
    served = [r["task"] for r in sorted(records, key=lambda r: r["score"])]
    assert served[:8] == scored.batch["task_id"].tolist()           # the batch first, in the strategy's order
    assert served == scored.pool.sort_values("rank")["task_id"].tolist()
    scores = [r["score"] for r in records]
    assert len(set(scores)) == len(scores) and min(scores) == 0.0 and max(scores) < 1.0


def test_below_the_threshold_nothing_is_preselected_above_it_the_answer_carries_its_probability():
    schema = parse_labeling_config(XML)
    pool = pd.DataFrame({"task_id": [1, 2, 3, 4], "text": ["a", "b", "c", "d"]})
    probs = np.array([[0.90, 0.05, 0.05], [0.45, 0.35, 0.20], [0.10, 0.80, 0.10], [0.34, 0.33, 0.33]])
    scored = score_pool(pool, probs, schema.kind, strategy="margin", n=2, model_version="run-1")
    rows = queue_rows(scored, threshold=0.8)
    assert rows["task_id"].tolist() == [4, 2, 3, 1]                    # margin order: least certain first
    assert rows["score"].tolist() == [0.0, 0.25, 0.5, 0.75]            # rank / N
    assert rows["preselect"].tolist() == [False, False, True, True]    # top1 0.34, 0.45 < 0.8 <= 0.80, 0.90
    records = {r["task"]: r for r in prediction_records(rows, schema, model_version="run-1")}
    assert records[4]["result"] == [] and records[2]["result"] == []   # order-only: no pre-selected answer
    assert records[4]["score"] == 0.0 and records[4]["model_version"] == "run-1"
    (item,) = records[1]["result"]
    assert item["value"] == {"choices": ["card"]} and item["score"] == pytest.approx(0.90)
    assert records[3]["result"][0]["value"] == {"choices": ["refund"]}
    assert records[3]["result"][0]["score"] == pytest.approx(0.80)
    # threshold 0: every task gets the model's answer; 1: none but a certain one
    assert queue_rows(scored, threshold=0.0)["preselect"].all()
    assert not queue_rows(scored, threshold=1.0)["preselect"].any()


def test_spans_keep_their_own_scores_and_the_threshold_reads_the_least_certain_decision():
    schema = parse_labeling_config(NER_XML)
    kind = schema.kind
    texts = ["Ann met Bob", "Cy in Rome"]
    names = kind.tag_names

    def probs(words: list[dict[int, float]]) -> np.ndarray:
        out = np.full((len(words), len(names)), 0.0)
        for w, tops in enumerate(words):
            for tag, p in tops.items():
                out[w, tag] = p
            out[w] /= out[w].sum()
        return out

    b_person, b_location, o = names.index("B-person"), names.index("B-location"), names.index("O")
    output = [probs([{b_person: 0.95, o: 0.05}, {o: 0.99, b_person: 0.01}, {b_person: 0.9, o: 0.1}]),
              probs([{b_person: 0.55, o: 0.45}, {o: 0.99, b_person: 0.01}, {b_location: 0.6, b_person: 0.4}])]
    pool = pd.DataFrame({"task_id": [1, 2], "text": texts})
    scored = score_pool(pool, output, kind, strategy="margin", n=1, model_version="run-ner")
    rows = queue_rows(scored, threshold=0.8).set_index("task_id")
    # top1 of a spans task = (1 + its weakest word's margin) / 2: Ann/Bob 0.9 - 0.1 -> 0.9; Cy 0.55 - 0.45 -> 0.55
    assert rows.loc[1, "result_score"] == pytest.approx(0.9) and rows.loc[2, "result_score"] == pytest.approx(0.55)
    assert rows.loc[2, "score"] == 0.0 and not rows.loc[2, "preselect"] and rows.loc[1, "preselect"]
    records = {r["task"]: r for r in prediction_records(rows.reset_index(), schema, model_version="run-ner")}
    assert records[2]["result"] == []
    spans = records[1]["result"]
    assert [i["value"]["text"] for i in spans] == ["Ann", "Bob"]
    assert [round(i["score"], 2) for i in spans] == [0.95, 0.9]        # each span's own score, not the task's


def test_prediction_records_without_the_new_columns_is_unchanged():
    schema = parse_labeling_config(XML)
    rows = pd.DataFrame({"task_id": [7, 8], "label": ["card", "other"], "score": [0.3, 0.9]})
    assert prediction_records(rows, schema, model_version="quality-s1") == [
        {"task": 7, "result": schema.result("card"), "score": 0.3, "model_version": "quality-s1"},
        {"task": 8, "result": schema.result("other"), "score": 0.9, "model_version": "quality-s1"}]


def test_queue_rows_refuses_a_cold_start_and_a_bad_threshold():
    schema = parse_labeling_config(XML)
    pool, probs, embeddings = pool_of(10)
    cold = score_pool(pool, None, schema.kind, strategy="cold_start", n=3, embeddings=embeddings)
    with pytest.raises(EmptyDataError, match="cold-start"):
        queue_rows(cold, threshold=0.5)
    scored = score_pool(pool, probs, schema.kind, strategy="margin", n=3, model_version="run-1")
    with pytest.raises(ConfigError, match="preannotate_threshold"):
        queue_rows(scored, threshold=1.5)


def test_the_tab_lists_unlabeled_tasks_of_the_version():
    items = queue_filters("fast-s1")["items"]
    assert {(i["filter"], i["operator"], str(i["value"])) for i in items} == {
        ("filter:tasks:predictions_model_versions", "contains", "['fast-s1']"),
        ("filter:tasks:total_annotations", "equal", "0")}
