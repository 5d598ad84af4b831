import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO, free_port
from tests.ui.conftest import write_config

PAGE = str(REPO / "studio" / "app" / "views" / "overview.py")
pytestmark = pytest.mark.labelstudio


def _fresh(at_env=None) -> AppTest:
    from studio.app import state

    state._workspace.clear()  # each test has its own STUDIO_CONFIG
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
