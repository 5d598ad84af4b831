"""A model's draft in Label Studio's own editor, in a real headless browser: an expert opens a prompt that has a
draft (a <TextArea> prediction of the project's model version), sees the draft, edits it and submits; the
submitted annotation holds the edited answer. Debian's chromium, driven by Playwright."""

from __future__ import annotations

import uuid

import pytest

from studio.labeling import parse_labeling_config
from tests.conftest import REPO
from tests.ui.test_browser_flow import CHROMIUM_FLAGS, _chromium

pytestmark = [pytest.mark.browser, pytest.mark.labelstudio, pytest.mark.slow]

DRAFT = "Open the Orders page and press Cancel order."


def test_an_expert_edits_and_submits_a_draft_in_label_studio(labelstudio, ls_client):
    from playwright.sync_api import sync_playwright

    from studio.labelstudio.server import load_credentials

    chromium = _chromium()
    url, _, state = labelstudio
    creds = load_credentials(state)
    xml = (REPO / "labeling_configs" / "sft.xml").read_text()
    schema = parse_labeling_config(xml)
    project = ls_client.create_project(f"drafts-ui-{uuid.uuid4().hex[:8]}", xml)
    ls_client.import_tasks(project.id, [{"data": {"prompt": "How do I cancel my order?"},
                                         "predictions": [{"result": schema.kind.result(DRAFT),
                                                          "model_version": "run-draft-ui", "score": 0.5}]}])
    ls_client.update_project(project.id, model_version="run-draft-ui", show_collab_predictions=True)
    task_id = ls_client.export_tasks(project.id)[0]["id"]
    artifacts = REPO / "tests" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/user/login/", timeout=60_000)
            page.fill('input[name="email"]', creds.username)
            page.fill('input[name="password"]', creds.password)
            page.locator('button[type="submit"], input[type="submit"]').first.click()
            page.wait_for_url(lambda u: "/login" not in u, timeout=60_000)
            page.goto(f"{url}/projects/{project.id}/data?task={task_id}", timeout=60_000)
            draft = page.get_by_text(DRAFT, exact=False).first
            draft.wait_for(timeout=90_000)                       # the draft is in the editor
            page.screenshot(path=str(artifacts / "draft_in_label_studio.png"), full_page=True)
            edited = DRAFT + " It is free within an hour."
            _edit_textarea_item(page, draft, edited)
            page.get_by_role("button", name="Submit").first.click(timeout=30_000)
            page.wait_for_timeout(2000)
        finally:
            browser.close()
    annotations = ls_client.export_tasks(project.id, ids=[task_id])[0]["annotations"]
    assert len(annotations) == 1
    assert schema.kind.answer(annotations[0]["result"]) == edited


def _edit_textarea_item(page, draft, text: str) -> None:
    """Replace a <TextArea> item's text the way an expert does: hover it, press its Edit button (Label Studio's
    `htx-textbox-edit-button`), type the new text, press Save (Enter would add a line break)."""
    region = page.locator('[data-testid="textarea-region"]').first
    region.hover()
    region.locator('[data-testid="htx-textbox-edit-button"]').click(force=True)
    editor = region.locator('[data-testid="htx-textbox-input"]')
    editor.wait_for(timeout=10_000)
    editor.fill(text)
    region.locator('[data-testid="htx-textbox-save"]').click()
