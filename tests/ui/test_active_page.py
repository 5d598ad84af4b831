"""AppTest for the active-learning page: the learning curve (from run folders written here, no training) and
what the push will do, said before the click."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO

PAGE = str(REPO / "studio" / "app" / "views" / "active.py")
pytestmark = pytest.mark.labelstudio


def _fresh() -> AppTest:
    from studio.app import state

    state._studio.clear()
    state.load_snapshot.clear()
    return AppTest.from_file(PAGE, default_timeout=240)


def _write_run(runs_root, run_id: str, *, labels: int, macro_f1: float) -> None:
    """A finished run folder as the registry lists it: only the files the learning curve reads."""
    folder = runs_root / run_id
    folder.mkdir(parents=True)
    (folder / "data.json").write_text(json.dumps({"created": run_id[4:19], "counts": {"train": labels}}))
    (folder / "metrics.json").write_text(json.dumps({"selected": "lora", "lora": {"validation": {"macro_f1":
                                                                                                macro_f1}}}))


def _curve_charts(at: AppTest) -> list[dict]:
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    return [s for s in specs if s["encoding"]["x"].get("title") == "training labels"]


def test_learning_curve_needs_two_label_counts(app_env):
    ws = app_env
    ws.sync()
    at = _fresh().run()
    assert not at.exception
    assert any("No finished training run yet" in i.value for i in at.info)
    assert not _curve_charts(at) and not at.slider

    _write_run(ws.runs_root, "run-20260101-000000-aaaa", labels=479, macro_f1=0.8)
    at = _fresh().run()
    assert not at.exception
    note = next(i.value for i in at.info if "two or more runs on different amounts of labels" in i.value)
    assert note.startswith("1 run so far, on 479 training labels") and "0.800" in note
    assert not _curve_charts(at) and not at.slider  # a single dot and a slider that forecasts nothing: gone

    _write_run(ws.runs_root, "run-20260102-000000-bbbb", labels=900, macro_f1=0.85)
    at = _fresh().run()
    assert not at.exception
    (curve,) = _curve_charts(at)
    assert curve["encoding"]["x"]["axis"] == {"format": "d", "tickMinStep": 1}
    assert at.slider[0].label == "Target validation macro-F1"
    assert any("Rough forecast from 2 runs" in i.value for i in at.info)
    assert any("scored on its own run's validation set" in c.value for c in at.caption)  # no predictions kept

    # Runs that kept their per-task predictions are scored on the validation tasks they share.
    import pandas as pd

    for run_id, wrong in (("run-20260101-000000-aaaa", 10), ("run-20260102-000000-bbbb", 2)):
        truth = [i % 2 for i in range(25)]
        pd.DataFrame({"task_id": range(25), "split": "validation", "truth": truth,
                      "pred": [1 - t if i < wrong else t for i, t in enumerate(truth)]}).to_parquet(
            ws.runs_root / run_id / "predictions.parquet")
    at = _fresh().run()
    assert any("on the same 25 validation tasks" in c.value for c in at.caption)


def test_push_says_it_covers_the_whole_pool_before_the_click(app_env):
    ws = app_env
    snapshot = ws.sync().snapshot
    at = _fresh().run()
    assert at.selectbox[0].options == ["auto", "run", "fast"]  # short names; the descriptions go under the box
    at.selectbox[0].set_value("fast").run()
    assert any(c.value.startswith("The fast learner: logistic regression") for c in at.caption)
    assert "**fast**: The fast learner" in at.selectbox[0].help
    at.button[0].click().run()  # score the pool with the fast learner
    assert not at.exception
    pool = 200 - len(snapshot.labeled())
    (histogram,) = [s for s in map(json.loads, (c.proto.spec for c in at.get("vega_lite_chart")))
                    if "bin" in s["encoding"]["x"]]
    assert histogram["encoding"]["x"]["title"] == "margin: top-1 − top-2 probability; low = uncertain"
    assert any(s.value.startswith("Margin between the top two labels") for s in at.subheader)
    batch = at.dataframe[0]
    assert len(batch.value) == 20 and "label" in batch.value  # the data keeps its column name
    headers = json.loads(batch.proto.columns)
    assert headers["label"]["label"] == "predicted label"  # the header says what it is
    # The margin is not the model's certainty in the predicted label: the header and its help say so.
    assert headers["confidence"]["label"] == "margin (top-1 − top-2)" and "hesitates" in headers["confidence"]["help"]
    assert (batch.value["top1"] >= batch.value["confidence"]).all()  # the model's probability of its label, too
    assert any(f"covers all {pool:,} unlabeled tasks, not only these 20" in c.value for c in at.caption)
    push = next(b for b in at.button if b.label.startswith("Push predictions"))
    assert push.label == f"Push predictions for all {pool:,} unlabeled tasks to Label Studio"
    # Before the click: how many open with the model's answer pre-selected and how many only get their place.
    scored = at.session_state["scored"]
    threshold = ws.cfg.active.preannotate_threshold
    answered = int((scored.pool["top1"] >= threshold).sum())
    assert 0 < answered < pool  # the demo's fast learner is sure of some tasks, not of all
    assert any(f"{answered:,} would open with the predicted label" in c.value and f"≥ {threshold:.2f}" in c.value
               and f"other {pool - answered:,} get their place in the queue but no pre-selected answer" in c.value
               for c in at.caption)
    push.click().run()
    (done,) = [s.value for s in at.success if f"Pushed {pool} predictions" in s.value]
    assert f"{answered:,} tasks open with the model's answer pre-selected" in done
    assert f"{pool - answered:,} are order-only" in done and "the diverse_margin order" in done


def test_least_confidence_batch_shows_the_top1_probability(app_env):
    app_env.sync()
    at = _fresh().run()
    at.selectbox[0].set_value("fast").run()
    at.selectbox[1].set_value("least_confidence").run()
    at.button[0].click().run()
    assert not at.exception
    batch = at.dataframe[0]
    assert list(batch.value.columns) == ["task_id", "text", "label", "top1", "confidence"]
    assert json.loads(batch.proto.columns)["top1"]["label"] == "top-1 probability"
    top1, margin = batch.value["top1"], batch.value["confidence"]
    # Least confidence asks first for the lowest top-1 probability; the margin can never exceed it.
    assert top1.is_monotonic_increasing and (margin <= top1 + 1e-9).all() and (top1 > 0).all(), batch.value
