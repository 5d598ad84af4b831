"""Pairwise human evaluation: hidden randomised sides, and win rates, ties and agreement from the judgments."""

from __future__ import annotations

import json

import pytest

from studio.errors import DataError, EmptyDataError
from studio.evaluation import CONFIG, ComparisonStore, build_comparison, comparison_results
from studio.labeling import load_labeling_config
from studio.records import annotations_frame, tasks_frame

PAIRWISE = load_labeling_config(CONFIG)


def _comparison(n: int = 40):
    prompts = [f"question {i}" for i in range(n)]
    return build_comparison(prompts, [f"base answer {i}" for i in range(n)], [f"tuned answer {i}" for i in range(n)],
                            system_a="base", system_b="run-1", seed=0)


def _judge(comparison, tasks, pick):
    """Label Studio records: judge `pick(item, judge)` -> the system they prefer (or "tie"), as a shown choice."""
    records = []
    by_item = {row["item"]: row for row in comparison.items}
    for i, task in enumerate(tasks, start=1):
        item = by_item[task["data"]["item"]]
        annotations = []
        for judge in (1, 2):
            wanted = pick(i, judge)
            shown = "Tie" if wanted == "tie" else ("A is better" if item["left"] == wanted else "B is better")
            annotations.append({"id": 100 * i + judge, "completed_by": judge, "result": PAIRWISE.result(shown)})
        records.append({"id": i, "data": task["data"], "annotations": annotations})
    return tasks_frame(records, PAIRWISE), annotations_frame(records, PAIRWISE, {1: "j1@x", 2: "j2@x"})


def test_sides_are_randomised_and_hidden_from_judges():
    comparison, tasks = _comparison()
    lefts = [row["left"] for row in comparison.items]
    assert 10 < lefts.count("run-1") < 30                       # about half each way
    for task in tasks:
        assert set(task["data"]) == {"prompt", "answer_a", "answer_b", "item"}
        assert "run-1" not in json.dumps(task["data"]) and "base" not in task["data"]["item"]
    with pytest.raises(DataError, match="two different models"):
        build_comparison(["p"], ["a"], ["b"], system_a="x", system_b="x")
    with pytest.raises(EmptyDataError, match="same answer"):
        build_comparison(["p"], ["same"], [" same "], system_a="x", system_b="y")


def test_win_rates_ties_and_agreement(tmp_path):
    comparison, tasks = _comparison()
    # judge 1 prefers the run on 30 prompts and ties on 10; judge 2 agrees except on the ties (prefers base)
    tasks_df, annotations = _judge(comparison, tasks,
                                   lambda i, judge: "run-1" if i <= 30 else ("tie" if judge == 1 else "base"))
    results = comparison_results(comparison, tasks_df, annotations)
    assert results.wins == {"base": 10, "run-1": 60} and results.ties == 10
    assert results.win_rate["run-1"] == pytest.approx((60 + 5) / 80)
    low, high = results.interval["run-1"]
    assert low < results.win_rate["run-1"] < high and high - low < 0.3
    assert results.agreement == pytest.approx(30 / 40) and results.tasks_judged == 40
    store = ComparisonStore(tmp_path)
    store.save(comparison)
    assert store.load(comparison.id).items == comparison.items and store.list()[0].id == comparison.id
    with pytest.raises(DataError, match="No comparison"):
        store.load("eval-nope")
