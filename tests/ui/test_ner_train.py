"""AppTest of the Train and Runs pages on a named-entity (spans) project: one click trains a token tagger in the
background job, and both pages then speak of entities (entity F1, precision, recall, per type, type confusion)."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from studio.labeling import parse_labeling_config
from tests.ui.test_ner_pages import ner_env  # noqa: F401 - the fixture, shared with the other NER pages
from tests.ui.test_pages import page, texts



def _charts(at) -> list[tuple[dict, pd.DataFrame]]:
    """(Vega-Lite spec, the rows it plots) of every chart on the page: Streamlit sends the rows beside the spec."""
    import pyarrow as pa

    out = []
    for chart in at.get("vega_lite_chart"):
        rows = [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in chart.proto.datasets]
        out.append((json.loads(chart.proto.spec), pd.concat(rows) if rows else pd.DataFrame()))
    return out


def _scores(at) -> tuple[list[str], pd.DataFrame]:
    """The validation scores chart's series names (legend order) and plotted rows."""
    (spec, rows), = [(s, r) for s, r in _charts(at) if "layer" in s]
    return spec["layer"][0]["encoding"]["color"]["scale"]["domain"], rows


def _offline_workspace(tmp_path, monkeypatch):
    """A workspace whose Label Studio is not running: the Train page's job panel reads only the job folders."""
    from studio.config import load_config
    from studio.workspace import Workspace

    config = tmp_path / "studio.toml"
    config.write_text(f'[labelstudio]\nurl = "http://127.0.0.1:9"\ntoken = "x"\nproject_id = 1\n'
                      f'[paths]\nstate_dir = "{tmp_path / "state"}"\n[demo]\nenabled = false\n', encoding="utf-8")
    monkeypatch.setenv("STUDIO_CONFIG", str(config))
    return Workspace(load_config(str(config)))


@pytest.mark.parametrize("evals, names", [
    ([{"step": 4, "epoch": 1.0, "entity_f1": 0.41, "precision": 0.5, "recall": 0.35, "macro_f1": 0.3,
       "accuracy": 0.9, "loss": 1.2}], ["validation entity F1", "validation precision", "validation recall"]),
    # points that kept only the two classification keys: named for what they are on spans
    ([{"step": 4, "epoch": 1.0, "macro_f1": 0.3, "accuracy": 0.9, "loss": 1.2}],
     ["validation entity macro-F1", "validation word accuracy"]),
])
def test_live_curve_of_a_spans_job_plots_entity_scores(tmp_path, monkeypatch, evals, names):
    ws = _offline_workspace(tmp_path, monkeypatch)
    curated = tmp_path / "ds-spans"
    curated.mkdir()
    (curated / "manifest.json").write_text(json.dumps({"task": "spans", "class_names": ["person"]}))
    job = ws.jobs_root / "job-20260101-000000-aaaa"
    job.mkdir(parents=True)
    (job / "request.json").write_text(json.dumps({"kind": "train", "curated": str(curated)}))
    (job / "status.json").write_text(json.dumps({
        "kind": "train", "state": "running", "phase": "training", "step": 5, "max_steps": 8, "epoch": 1.2,
        "loss": [{"step": s, "epoch": s / 4, "loss": 2.0 / s} for s in range(1, 6)], "evals": evals}))
    at = page("train").run()
    assert not at.exception
    shown, rows = _scores(at)
    assert shown == names
    assert sorted(rows["series"]) == sorted(names) and rows["value"].between(0, 1).all()
    assert rows.set_index("series").loc[names[0], "value"] == evals[0].get("entity_f1", evals[0]["macro_f1"])


@pytest.mark.labelstudio
@pytest.mark.training
def test_train_an_ner_project_and_read_entity_scores(ner_env, tiny_model, monkeypatch):  # noqa: F811
    from training.jobs import current_job
    from training.runs import RunRegistry, run_metrics

    monkeypatch.setenv("STUDIO_TRAIN_BASE_MODEL", tiny_model)
    monkeypatch.setenv("STUDIO_TRAIN_MAX_STEPS", "6")
    monkeypatch.setenv("STUDIO_TRAIN_BATCH_SIZE", "8")
    monkeypatch.setenv("STUDIO_TRAIN_MAX_LENGTH", "32")
    ws = ner_env
    at = page("train").run()
    assert not at.exception and any("No training job" in m.value for m in at.markdown)
    next(b for b in at.button if b.label == "Train on current labels").click().run()
    assert not at.exception
    assert any("Started job" in v for v in texts(at, "success")), texts(at, "error")
    deadline = time.monotonic() + 150
    while current_job(jobs_root=ws.jobs_root).active and time.monotonic() < deadline:
        time.sleep(1)
    job = current_job(jobs_root=ws.jobs_root)
    assert job.state == "succeeded", job.error
    metrics = run_metrics(RunRegistry(ws.runs_root).path(job.run_id))
    summary, split = metrics["summary"], metrics["summary"]["split"]
    assert metrics["task"] == "spans" and metrics["curve"]["eval"], metrics.get("curve")

    at = page("train").run()
    assert not at.exception
    (done,) = [v for v in texts(at, "success") if f"Finished: run `{job.run_id}`" in v]
    assert f"{split} entity F1 {summary['entity_f1']:.3f} (precision {summary['precision']:.3f}" in done
    assert "validation entity F1" in done and "accuracy" not in done and "macro-F1" not in done
    names, rows = _scores(at)
    assert names == ["validation entity F1", "validation precision", "validation recall"]
    # the run's recorded evaluations, whatever the job status kept of them
    recorded = [p["entity_f1"] for p in metrics["curve"]["eval"]]
    assert rows[rows["series"] == names[0]]["value"].tolist() == pytest.approx(recorded)

    at = page("runs").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table["run"].tolist() == [job.run_id]
    assert table["entity F1"].iloc[0] == pytest.approx(summary["entity_f1"])
    assert {"precision", "recall"} <= set(table.columns) and not {"accuracy", "macro-F1"} & set(table.columns)
    compare = at.dataframe[1].value
    assert compare["entity F1"].iloc[0] == pytest.approx(summary["entity_f1"])
    assert [s.value for s in at.subheader] == [f"Type confusion ({split})", "Per type"]
    classes = list(parse_labeling_config(ws.project().label_config).classes)
    per_type = at.dataframe[2].value
    assert per_type["type"].tolist() == classes and "f1" in per_type.columns
    (heat, cells), = [(s, r) for s, r in _charts(at) if "layer" not in s]
    labels = [*classes, "none"]
    assert heat["encoding"]["y"]["sort"] == labels and heat["encoding"]["x"]["sort"] == labels
    matrix = metrics[split]["type_confusion"]["matrix"]
    assert len(cells) == len(labels) ** 2 and cells["count"].sum() == sum(map(sum, matrix))
    assert cells.set_index(["true", "predicted"]).loc[("none", "none"), "count"] == 0
    assert any("validation entity F1" in c.value for c in at.caption)
    assert any("Column **none**" in c.value for c in at.caption)
