"""AppTest for the Train and Runs pages, on job and run folders written here (no training): what the charts
plot and how, the table headers, and what a disabled Promote button says."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO

PAGES = REPO / "studio" / "app" / "views"
pytestmark = pytest.mark.labelstudio

EVAL_NOTE = "Validation scores appear after the first evaluation (the end of epoch 1)"


def _fresh(name: str) -> AppTest:
    from studio.app import state

    state._studio.clear()
    state.load_snapshot.clear()
    return AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=240)


def _specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def _write_job(jobs_root, **status) -> None:
    """A job folder as training/jobs.py writes it; without a pid a 'running' job stays running."""
    folder = jobs_root / "job-20260101-000000-aaaa"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "status.json").write_text(json.dumps({"kind": "train", **status}))


def test_train_charts_smooth_the_loss_and_tell_the_scores_apart(app_env):
    ws = app_env
    # Steady ~0.2 with one spike: an epoch's last batch of 2 rows (step 14), as in a real run.
    losses = [0.5, 0.22, 0.15, 0.3, 0.16, 0.29, 0.3, 0.28, 0.25, 0.35, 0.13, 0.17, 0.16, 2.08,
              0.21, 0.2, 0.24, 0.27, 0.14, 0.21, 0.27, 0.06, 0.11, 0.29, 0.13, 0.18, 0.16, 0.4]
    loss = [{"step": i + 1, "epoch": (i + 1) / 14, "loss": v} for i, v in enumerate(losses)]
    _write_job(ws.jobs_root, state="running", phase="training", step=10, max_steps=28, epoch=0.7, loss=loss[:10])
    at = _fresh("train").run()
    assert not at.exception
    assert any(c.value == EVAL_NOTE for c in at.caption)  # not an empty chart area while epoch 1 runs
    (chart,) = _specs(at)
    assert chart["encoding"]["color"]["scale"]["domain"] == ["train (raw)", "train (smoothed)"]  # no validation yet
    assert "domain" not in chart["encoding"]["y"].get("scale", {})  # nothing to cut off: the axis fits all

    evals = [{"step": 14, "epoch": 1.0, "macro_f1": 0.904, "accuracy": 0.909, "loss": 0.56},
             {"step": 28, "epoch": 2.0, "macro_f1": 0.871, "accuracy": 0.875, "loss": 0.57}]
    _write_job(ws.jobs_root, state="failed", error="boom", step=28, max_steps=28, epoch=2.0, loss=loss, evals=evals)
    at = _fresh("train").run()
    assert not at.exception and any("Failed: boom" in e.value for e in at.error)
    assert not any(c.value == EVAL_NOTE for c in at.caption)
    loss_chart = next(s for s in _specs(at) if "layer" not in s)
    assert loss_chart["encoding"]["color"]["scale"]["domain"] == ["train (raw)", "train (smoothed)", "validation"]
    scale = loss_chart["encoding"]["y"]["scale"]
    top = scale["domain"][1]
    # The spike no longer sets the axis (it is drawn at the edge); the validation loss stays whole under the top.
    assert scale["clamp"] is True and scale["domain"][0] == 0 and 0.57 <= top < 1.0, scale
    assert any(f"above {top:.2f} are drawn at the top edge" in c.value for c in at.caption)

    (scores,) = [s for s in _specs(at) if "layer" in s]
    line, points = scores["layer"]
    names = ["validation macro-F1", "validation accuracy"]
    assert line["encoding"]["strokeDash"]["scale"] == {"domain": names, "range": [[1, 0], [6, 4]]}
    assert points["encoding"]["shape"]["scale"] == {"domain": names, "range": ["circle", "square"]}
    tooltip = line["encoding"]["tooltip"]
    assert [t["field"] for t in tooltip] == ["series", "step", "value"] and tooltip[2]["format"] == ".3f"


def _write_run(runs_root, run_id: str, *, created: str, classes: list[str]) -> None:
    """A finished run folder with the files the Runs page reads."""
    folder = runs_root / run_id
    folder.mkdir(parents=True)
    (folder / "data.json").write_text(json.dumps({"created": created, "version_id": "v1", "counts": {"train": 40}}))
    per_class = {c: {"precision": 0.8, "recall": 0.7, "f1": 0.75, "support": 10} for c in classes}
    matrix = [[7 if i == j else 1 for j in range(len(classes))] for i in range(len(classes))]
    (folder / "metrics.json").write_text(json.dumps({
        "selected": "lora", "summary": {"accuracy": 0.8, "macro_f1": 0.75, "split": "test", "selected": "lora"},
        "test": {"per_class": per_class, "confusion_matrix": matrix}}))


def test_runs_page_headers_full_width_matrix_and_why_promote_is_off(app_env):
    from training.runs import RunRegistry

    ws = app_env
    classes = ["card_arrival", "exchange_rate", "lost_or_stolen_card"]
    old, new = "run-20260101-000000-v1", "run-20260102-030405-v1"
    _write_run(ws.runs_root, old, created="2026-01-01T00:00:00+00:00", classes=classes)
    _write_run(ws.runs_root, new, created="2026-01-02T04:04:05+01:00", classes=classes)
    RunRegistry(ws.runs_root).promote(new)
    at = _fresh("runs").run()
    assert not at.exception
    runs = at.dataframe[0]
    assert runs.value["created"].tolist() == ["2026-01-02 03:04:05", "2026-01-01 00:00:00"]  # UTC, to the second
    assert json.loads(runs.proto.columns)["created"]["label"] == "created (UTC)"
    per_class = at.dataframe[2].value
    assert list(per_class.columns)[:2] == ["class", "precision"] and per_class["class"].tolist() == classes
    assert not at.columns  # the confusion matrix has the page's width, not half of it
    assert [s.value for s in at.subheader] == ["Confusion matrix (test)", "Per class"]

    assert at.selectbox[0].value == new and at.button[0].disabled
    assert any(c.value == f"`{new}` is the current model." for c in at.caption)
    at.selectbox[0].set_value(old).run()
    assert not at.button[0].disabled and not any("is the current model." in c.value for c in at.caption)
