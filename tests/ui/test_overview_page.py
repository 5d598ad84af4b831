import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO, free_port
from tests.ui.conftest import write_config

PAGE = str(REPO / "studio" / "app" / "views" / "overview.py")
pytestmark = pytest.mark.labelstudio


def _fresh(at_env=None) -> AppTest:
    from studio.app import state

    state._studio.clear()  # each test has its own STUDIO_CONFIG
    state.load_snapshot.clear()
    return AppTest.from_file(PAGE, default_timeout=120)


def test_overview_sync_shows_counts(app_env):
    at = _fresh().run()
    assert not at.exception
    assert any("No snapshot yet" in i.value for i in at.info)
    at.button[0].click().run()
    assert not at.exception
    assert any("New snapshot" in s.value for s in at.success)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tasks"] == "200" and metrics["Labeled tasks"] == "60" and metrics["Annotators"] == "2"
    at.button[0].click().run()
    assert any("Nothing changed" in i.value for i in at.info)


def test_overview_unreachable_and_wrong_token(tmp_path, labelstudio, monkeypatch):
    url, _, _ = labelstudio
    monkeypatch.setenv("STUDIO_CONFIG", write_config(tmp_path, f"http://127.0.0.1:{free_port()}", "x", "p"))
    at = _fresh().run()
    assert not at.exception and "not reachable" in at.error[0].value
    assert "make up" in at.info[0].value
    monkeypatch.setenv("STUDIO_CONFIG", write_config(tmp_path, url, "wrong-token", "p"))
    at = _fresh().run()
    assert not at.exception and "refused the API token" in at.error[0].value


def test_overview_shows_the_stored_snapshot_while_label_studio_is_down(app_env, monkeypatch, tmp_path):
    ws = app_env
    snapshot = ws.sync().snapshot
    config = tmp_path / "down.toml"
    config.write_text(open(ws.cfg.source).read().replace(ws.url, f"http://127.0.0.1:{free_port()}"))
    monkeypatch.setenv("STUDIO_CONFIG", str(config))
    at = _fresh().run()
    assert not at.exception and "not reachable" in at.error[0].value
    assert any("newest stored snapshot" in c.value for c in at.caption)
    assert not any(b.label == "Sync" for b in at.button)  # nothing to sync from
    assert {m.label for m in at.metric} >= {"Tasks", "Labeled tasks"}
    assert snapshot.id in at.dataframe[-1].value["snapshot_id"].tolist()  # the history is there


def test_overview_facts_are_captions_charts_fit_and_history_reads(app_env):
    import json
    import re

    ws = app_env
    ws.sync()
    at = _fresh().run()
    assert not at.exception
    # Shares and skip counts are not changes: no delta badge (an up arrow), the numbers are in captions instead.
    assert all(not m.proto.delta for m in at.metric), [(m.label, m.proto.delta) for m in at.metric]
    captions = [c.value for c in at.caption]
    assert "30% of tasks" in captions  # 60 of 200
    assert any(re.fullmatch(r"\d+ skipped \(not counted\)", c) for c in captions), captions

    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    annotators, classes = specs  # progress per annotator, class distribution
    snapshot = ws.store.latest(ws.project().id)
    for spec, bars in ((annotators, snapshot.annotations["annotator"].nunique()),
                       (classes, snapshot.labeled()["label"].nunique())):
        assert spec["encoding"]["y"]["axis"]["labelLimit"] == 250
        assert spec["height"] >= 60 + 24 * bars  # every bar gets room, however many there are
    if not snapshot.annotations["was_cancelled"].any():  # one status only: a one-entry legend says nothing
        assert annotators["encoding"]["color"]["legend"] is None

    history = at.dataframe[-1]
    assert list(history.proto.column_order) == ["snapshot_id", "created_at", "tasks", "labeled_tasks",
                                                "submitted_annotations", "sync_mode", "parent"]
    labels = {name: conf.get("label") for name, conf in json.loads(history.proto.columns).items()}
    assert labels["created_at"] == "created (UTC)" and labels["labeled_tasks"] == "labeled"
    row = history.value.iloc[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["created_at"]), row["created_at"]
    assert row["parent"] == ""  # the first snapshot has no parent: empty, not "None"
