"""The main flow once in a real headless browser: open the app, press Sync, see the counts. Saves a screenshot
to tests/artifacts/overview.png. Uses Debian's chromium (installed by `make test`), driven by Playwright
without downloading a browser."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import httpx
import pytest

from studio.services import app_command
from tests.conftest import REPO, free_port
from tests.ui.test_ner_pages import ner_env  # noqa: F401 - the NER project fixture

pytestmark = [pytest.mark.browser, pytest.mark.labelstudio, pytest.mark.slow]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def running_app(app_env):
    yield from _serve(app_env)


@pytest.fixture
def running_ner_app(ner_env):  # noqa: F811 - the fixture imported above, injected by pytest
    """The app on an NER project whose newest snapshot already has its span quality report."""
    ner_env.quality.assess(ner_env.sync().snapshot)
    yield from _serve(ner_env)


def _chromium() -> str:
    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (make test installs it with apt-get)")
    return chromium


def _serve(ws):
    ws.cfg.app.port = free_port()
    env = {**os.environ, "STUDIO_CONFIG": os.environ["STUDIO_CONFIG"], "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(app_command(ws), env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{ws.cfg.app.port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the Streamlit app did not become healthy in 90 s")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_overview_in_chromium_shows_counts_after_sync(running_app):
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    artifacts = REPO / "tests" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1700})
            # The first visitor of a fresh server opens a page's own address (a bookmark, a reload): the app's
            # navigation must still be the one main.py builds, not Streamlit's legacy folder-of-pages one.
            page.goto(f"{running_app}/quality", timeout=60_000)
            page.get_by_text("No snapshot yet", exact=False).first.wait_for(timeout=60_000)
            nav = " | ".join(page.locator('[data-testid="stSidebarNav"]').all_inner_texts())
            assert "Active learning" in nav and "main" not in nav.split(), nav
            page.goto(running_app, timeout=60_000)
            page.get_by_role("button", name="Sync").click(timeout=60_000)
            page.get_by_text("New snapshot ", exact=False).first.wait_for(timeout=120_000)
            metrics = page.locator('[data-testid="stMetric"]')
            metrics.first.wait_for(timeout=60_000)
            # Charts and tables load lazily behind grey skeletons; wait for them so the screenshot shows the
            # page a data lead sees (and a chart that never renders fails here instead of going unnoticed).
            charts = page.locator('[data-testid="stVegaLiteChart"]')
            tables = page.locator('[data-testid="stDataFrame"] >> visible=true')  # one more sits in a closed expander
            charts.nth(1).wait_for(timeout=60_000)   # progress per annotator + class distribution
            tables.nth(1).wait_for(timeout=60_000)   # validation summary + snapshot history
            page.wait_for_function("!document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=60_000)
            # The Sync button keeps hover and focus after the click; its tooltip would cover the caption.
            page.mouse.move(5, 5)
            page.evaluate("document.activeElement && document.activeElement.blur()")
            page.wait_for_timeout(700)
            text = " | ".join(" ".join(t.split()) for t in metrics.all_inner_texts())
            page.screenshot(path=str(artifacts / "overview.png"), full_page=True)
        finally:
            browser.close()
    assert "Tasks 200" in text and "Labeled tasks 60" in text and "Annotators 2" in text, text


def test_ner_quality_page_in_chromium_highlights_spans(running_ner_app):
    """The Quality page of a named-entity project: the flagged texts, with spans marked in the text by type."""
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    artifacts = REPO / "tests" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            page.goto(f"{running_ner_app}/quality", timeout=60_000)
            page.get_by_text("flagged texts", exact=False).first.wait_for(timeout=120_000)
            marks = page.locator("mark")
            marks.first.wait_for(timeout=60_000)
            labels = " ".join(marks.all_inner_texts())
            page.screenshot(path=str(artifacts / "ner_quality.png"), full_page=True)
        finally:
            browser.close()
    assert "person" in labels and "location" in labels, labels
