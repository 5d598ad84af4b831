"""AppTest of every page on an instruction -> response project, on the real test Label Studio: the quality checks
and a review decision, curation, one-click training of a tiny causal LM, the run's answers on Runs, and drafts
pushed from Active learning."""

from __future__ import annotations

import time
import uuid

import pandas as pd
import pytest

from tests.conftest import REPO
from tests.ui.test_pages import page, texts

pytestmark = [pytest.mark.labelstudio, pytest.mark.training]

DEMO = REPO / "data" / "demo" / "customer_support_demo.csv"


@pytest.fixture
def gen_env(tmp_path, labelstudio, ls_client, monkeypatch, tiny_chat_model):
    """A customer-support project: 36 answered prompts (one with a second expert's answer, two near-duplicates of
    the same prompt), 8 unanswered; [sft] on the tiny causal LM; STUDIO_CONFIG pointing at it."""
    from studio.config import load_config
    from studio.importer import build_tasks
    from studio.labeling import parse_labeling_config
    from studio.workspace import Workspace

    url, token, _ = labelstudio
    title = f"sft-ui-{uuid.uuid4().hex[:8]}"
    xml = (REPO / "labeling_configs" / "sft.xml").read_text()
    project = ls_client.create_project(title, xml)
    schema = parse_labeling_config(xml)
    rows = pd.read_csv(DEMO).head(44)
    rows.loc[1, "prompt"] = rows.loc[0, "prompt"]                   # the same request twice ...
    rows.loc[1, "response"] = "Please send us your order number."  # ... answered differently
    answered, pool = rows.head(36), rows.tail(8).drop(columns=["response"])
    tasks = build_tasks(answered, schema, text_column="prompt", label_column="response")
    tasks += build_tasks(pool, schema, text_column="prompt")
    ls_client.import_tasks(project.id, tasks)
    first = ls_client.export_tasks(project.id)[2]
    expert = ls_client.create_user(f"expert-{uuid.uuid4().hex[:6]}@tests.local")
    ls_client.create_annotation(first["id"], schema.kind.result("A second expert's answer, shorter."),
                                completed_by=expert)
    config = tmp_path / "studio.toml"
    config.write_text(
        f'[labelstudio]\nurl = "{url}"\ntoken = "{token}"\nproject_title = "{title}"\n'
        f'labeling_config = "{REPO / "labeling_configs" / "sft.xml"}"\n'
        f'[paths]\nstate_dir = "{tmp_path / "state"}"\n[demo]\nenabled = false\n'
        f'[sft]\nbase_model = "{tiny_chat_model}"\nmax_length = 256\nmax_steps = 3\nbatch_size = 4\n'
        f'gradient_accumulation_steps = 1\neval_prompts = 3\nmax_new_tokens = 8\ngeneration_batch_size = 4\n'
        f'threads = 1\n', encoding="utf-8")
    monkeypatch.setenv("STUDIO_CONFIG", str(config))
    return Workspace(load_config(str(config)))


def test_overview_quality_and_a_review_decision(gen_env):
    ws = gen_env
    snapshot = ws.sync().snapshot
    assert snapshot.schema.kind.name == "generation"
    at = page("overview").run()
    assert not at.exception
    assert any(s.value == "Answer length" for s in at.subheader)
    at = page("quality").run()
    assert not at.exception
    assert any("No quality report" in v for v in texts(at, "info"))
    at.button[0].click().run()  # Run quality checks
    assert not at.exception
    report = ws.quality.assessment(snapshot)
    assert "exact_duplicate_prompt" in set(report.issues["check"])
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["flagged prompts"]) == len(report.tasks)
    at.selectbox(key="gen_check").select("exact_duplicate_prompt").run()
    assert not at.exception
    next(b for b in at.button if b.label == "Exclude from training").click().run()
    assert not at.exception
    log = ws.decisions(snapshot.manifest["project_id"]).read()
    assert log.iloc[-1]["action"] == "exclude"
    assert log.iloc[-1]["task_id"] in set(report.flagged("exact_duplicate_prompt")["task_id"])


def test_studio_quality_prints_the_answer_checks(gen_env, tmp_path, capsys):
    from argparse import Namespace

    from studio.cli.base import COMMANDS
    import studio.cli  # noqa: F401  (registers the commands)

    ws = gen_env
    ws.sync()
    assert COMMANDS["quality"][0](ws, Namespace(snapshot=None, out=str(tmp_path / "issues.csv"))) == 0
    out = capsys.readouterr().out
    assert "answered prompts" in out and "exact_duplicate_prompt" in out and "Worst prompts" in out
    assert "exact_duplicate_prompt" in (tmp_path / "issues.csv").read_text()


def test_curate_train_runs_and_drafts(gen_env):
    from training.jobs import current_job
    from training.runs import RunRegistry

    ws = gen_env
    snapshot = ws.sync().snapshot
    at = page("curate").run()
    assert not at.exception
    next(b for b in at.button if b.label == "Save settings and preview").click().run()
    assert not at.exception
    assert any("Prompts per split" in s.value for s in at.subheader)
    job = ws.training.start_training(snapshot)
    deadline = time.time() + 600
    while (job := current_job(jobs_root=ws.jobs_root)).active and time.time() < deadline:
        time.sleep(2)
    assert job.state == "succeeded", job.error
    at = page("train").run()
    assert not at.exception
    assert any("Finished: run" in v for v in texts(at, "success"))
    run = RunRegistry(ws.runs_root).current()
    assert run is not None and run.metrics["task"] == "generation"
    at = page("runs").run()
    assert not at.exception
    assert any("Base model vs fine-tuned" in s.value for s in at.subheader)
    assert any(b.label == "Compare in Label Studio" for b in at.button)

    at = page("active").run()
    assert not at.exception
    at.number_input[0].set_value(2).run()
    next(b for b in at.button if b.label == "Draft answers").click().run()
    assert not at.exception
    next(b for b in at.button if b.label == "Push drafts to Label Studio").click().run()
    assert not at.exception
    assert any("Pushed 2 drafts" in v for v in texts(at, "success"))
    project = ws.project()
    assert run.id in ws.client.model_versions(project.id)
