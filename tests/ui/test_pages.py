"""AppTest for every page beyond Overview, on a real Label Studio with a small provisioned demo project.

Training uses the tiny BERT (STUDIO_TRAIN_* overrides) so the one-click flow runs in seconds."""

import time

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from studio.labeling import parse_labeling_config
from tests.conftest import REPO

PAGES = REPO / "studio" / "app" / "views"
pytestmark = pytest.mark.labelstudio


def page(name: str) -> AppTest:
    from studio.app import state

    state._studio.clear()
    state.load_snapshot.clear()
    return AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=240)


def texts(at: AppTest, kind: str) -> list[str]:
    return [e.value for e in getattr(at, kind)]


def relabel_in_label_studio(ws, task: int, label: str) -> None:
    """Every annotator of the task changes their answer to `label`, as they would in the browser."""
    project = ws.project()
    schema = parse_labeling_config(project.label_config)
    for annotation in ws.client.export_tasks(project.id, ids=[task])[0]["annotations"]:
        ws.client.update_annotation(int(annotation["id"]), schema.result(label))


def test_pages_ask_for_a_snapshot_first(app_env):
    for name in ("quality", "curate", "active"):
        at = page(name).run()
        assert not at.exception, name
        assert any("No snapshot yet" in v for v in texts(at, "info")), name


def test_quality_review_and_send_back(app_env):
    ws = app_env
    snapshot = ws.sync().snapshot
    at = page("quality").run()
    assert any("No quality report" in v for v in texts(at, "info"))
    at.button[0].click().run()
    assert not at.exception
    metrics = {m.label: int(m.value) for m in at.metric}
    stored = ws.quality.assessment(snapshot).issues
    assert metrics["label issue"] == int((stored["is_issue"] & (stored["issue_type"] == "label_issue")).sum())
    assert metrics["decided"] == 0
    task = int(snapshot.labeled()["task_id"].iloc[0])
    at.toggle[0].set_value(False).run()  # every label_issue row, flagged or not
    at.multiselect(key="picked_ids").set_value([task]).run()
    assert at.text_input(key="author_field").value == "admin@tests.local"  # the Label Studio login, at first
    at.text_input(key="author_field").set_value("lead@example.org").run()
    at.radio[0].set_value("exclude")  # form widgets: set, then submit in one run
    next(b for b in at.button if b.label.startswith("Apply to")).click().run()  # the form's submit button
    assert any("Recorded 1 decisions" in v for v in texts(at, "success"))
    # The action's result shows at once: the decided count and the queue's decision column, not one click later.
    assert {m.label: int(m.value) for m in at.metric}["decided"] == 1
    shown = at.dataframe(key="queue").value.set_index("task_id")
    assert shown.loc[task, "decision"] == "exclude"
    assert {b.label.split(" (")[0] for b in at.get("download_button")} >= {
        f"Download these {len(shown)} rows", "Download the decision log"}
    log = ws.decisions(snapshot.manifest["project_id"]).read()
    assert log.iloc[-1]["action"] == "exclude" and log.iloc[-1]["author"] == "lead@example.org"
    at.multiselect(key="picked_ids").set_value([task]).run()
    # The task has a decision now: sending it is warned about and takes a second click.
    assert any("already have a decision in force" in w.value for w in at.warning)
    assert next(b for b in at.button if b.label.startswith("Send 0 selected")).disabled
    at.checkbox(key="send_decided").check().run()
    send = next(b for b in at.button if b.label.startswith("Send 1 selected"))
    send.click().run()
    assert any("Needs review" in v for v in texts(at, "success")), (texts(at, "error"), at.exception)
    assert task in ws.client.view_task_ids(ws.project().id, ws.client.upsert_view(
        ws.project().id, "Needs review", filters={"conjunction": "and", "items": [
            {"filter": "filter:tasks:predictions_model_versions", "operator": "contains", "type": "List",
             "value": [f"quality-{snapshot.id}"]}]}))
    undo = next(b for b in at.button if b.label.startswith("Undo"))
    undo.click().run()
    assert any("Undid 1 decisions" in v for v in texts(at, "success"))
    # Every row of a filtered view at once: all label_issue rows of one class, flagged or not.
    labeled = snapshot.labeled()
    cls = labeled["label"].value_counts().index[0]
    at.multiselect[1].set_value([cls]).run()  # "Given label" filter
    at.checkbox(key="pick_all").check().run()
    at.radio[0].set_value("keep")
    at.button[1].click().run()
    expected = set(labeled.loc[labeled["label"] == cls, "task_id"])
    kept = ws.decisions(snapshot.manifest["project_id"]).read()
    assert set(kept.loc[kept["action"] == "keep", "task_id"]) == expected, kept


def test_quality_one_by_one(app_env):
    """The worst undecided label issue first; keep, skip, relabel, undo; a decision without an author is refused."""
    from studio.review import effective_decisions

    ws = app_env
    snapshot = ws.sync().snapshot
    ws.quality.assess(snapshot)
    log = ws.decisions(snapshot.manifest["project_id"])
    issues = ws.quality.assessment(snapshot).issues
    queue = issues[(issues["issue_type"] == "label_issue") & issues["is_issue"]].sort_values("score", kind="stable")
    assert len(queue) >= 3, queue
    first, second, third = (int(t) for t in queue["task_id"].iloc[:3])

    def shown(at: AppTest) -> str:
        return " ".join(c.value for c in at.caption if c.value.startswith("Task "))

    at = page("quality").run()
    assert f"Task {first} ·" in shown(at)
    given = next(m.value for m in at.markdown if m.value.startswith("Given:")).replace("\\", "")  # as rendered
    assert "@demo.local" in given and '["' not in given, given  # annotators by name, not as stored JSON
    at.text_input(key="author_field").set_value("").run()
    at.button(key="one_keep").click().run()
    assert any("author" in e.value for e in at.error) and log.read().empty  # nobody to attribute it to
    at.text_input(key="author_field").set_value("lead@example.org")
    at.button(key="one_keep").click().run()
    assert effective_decisions(log.read()).set_index("task_id").loc[first, "action"] == "keep"
    assert f"Task {second} ·" in shown(at) and f"1 of {len(queue)} flagged" in at.get("progress")[0].proto.text
    at.button(key="one_skip").click().run()
    assert f"Task {third} ·" in shown(at)
    target = ws.quality.assessment(snapshot).meta["classes"][0]
    at.selectbox(key=f"one_other_{third}").set_value(target).run()
    at.button(key="one_other_apply").click().run()
    current = effective_decisions(log.read()).set_index("task_id")
    assert current.loc[third, "action"] == "relabel" and current.loc[third, "label"] == target
    assert second not in current.index  # skipped, not decided
    at.button(key="one_undo").click().run()
    assert third not in set(effective_decisions(log.read())["task_id"])
    assert f"Task {third} ·" in shown(at)  # back in the queue; the skipped one stays skipped this session


def test_auto_fix_from_the_page_and_the_cli(app_env, capsys, tmp_path):
    """Confident suggestions become relabel decisions; a person's decision stays; the rest goes to Label Studio."""
    from studio import cli
    from studio.review import Decision, effective_decisions

    ws = app_env
    snapshot = ws.sync().snapshot
    pid = snapshot.manifest["project_id"]
    assert cli.main(["autofix"]) == 2
    assert "no quality report" in capsys.readouterr().err
    assert cli.main(["quality", "--out", str(tmp_path / "issues.csv")]) == 0  # the report, from the CLI this time
    assert "Most likely mislabeled" in capsys.readouterr().out
    issues = ws.quality.assessment(snapshot).issues
    assert len(pd.read_csv(tmp_path / "issues.csv")) == len(issues)
    flagged = issues[(issues["issue_type"] == "label_issue") & issues["is_issue"]]
    suggested = flagged[flagged["suggested_label"] != ""].sort_values("confidence")
    assert len(suggested) >= 3, flagged  # 60 demo labels over a dozen classes: the model is unsure of several
    kept = int(suggested["task_id"].iloc[-1])  # the most confident one, decided by a person first
    ws.decisions(pid).append([Decision(kept, "keep", "lead@example.org", snapshot.id)],
                             classes=ws.quality.assessment(snapshot).meta["classes"])
    threshold = int(suggested["confidence"].median() * 100) / 100
    expected = set(suggested.loc[suggested["confidence"] >= threshold, "task_id"]) - {kept}

    at = page("quality").run()
    at.slider(key="auto_fix_threshold").set_value(threshold).run()
    record = f"People reviewed 1 flagged label whose suggestion the model gives {threshold:g} or more and took"
    assert any(record in v and "(0%)" in v for v in texts(at, "markdown")), texts(at, "markdown")  # the keep
    at.text_input(key="author_field").set_value("lead@example.org")
    at.button(key="auto_fix").click().run()
    assert any(f"Relabelled {len(expected)} tasks" in v for v in texts(at, "success")), (texts(at, "error"))
    current = effective_decisions(ws.decisions(pid).read()).set_index("task_id")
    assert set(current.index[current["action"] == "relabel"]) == expected
    assert current.loc[kept, "action"] == "keep"
    assert current.loc[list(expected), "note"].str.startswith("auto-fix").all()

    before = len(ws.decisions(pid).read())
    undecided = flagged[~flagged["task_id"].isin(expected | {kept})]
    cls = undecided["given_label"].iloc[0]
    assert cli.main(["autofix", "--min-confidence", "0.05", "--class", cls, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"of {int((undecided['given_label'] == cls).sum())} undecided" in out
    assert "took the suggestion for 0 (0%)" in out and "Given labels whose suggestions" in out  # auto-fix's own
    # relabels are not a track record: only the person's keep counts
    assert cli.main(["autofix", "--min-confidence", "0.999", "--dry-run"]) == 0
    assert len(ws.decisions(pid).read()) == before  # a dry run changes nothing
    rest = set(flagged["task_id"]) - expected - {kept}
    assert cli.main(["autofix", "--min-confidence", "0.999", "--send-rest", "--author", "lead@example.org"]) == 0
    assert f"Sent {len(rest)} to the 'Needs review' tab" in capsys.readouterr().out
    view = ws.client.upsert_view(pid, "Needs review", filters={"conjunction": "and", "items": [
        {"filter": "filter:tasks:predictions_model_versions", "operator": "contains", "type": "List",
         "value": [f"quality-{snapshot.id}"]}]})
    assert rest <= set(ws.client.view_task_ids(pid, view))
    assert len(rest) > 3 and ws.client.view_task_ids(pid, view, page_size=3) == ws.client.view_task_ids(pid, view)
    assert cli.main(["autofix", "--min-confidence", "0.999", "--send-rest", "--author", "lead@example.org"]) == 0
    assert "Sent 0 to the 'Needs review' tab" in capsys.readouterr().out  # already there: no second prediction
    counts = ws.client.request("GET", f"api/projects/{pid}/model-versions/")  # {version: predictions}
    assert counts[f"quality-{snapshot.id}"] == len(set(ws.client.view_task_ids(pid, view)))


@pytest.mark.training
def test_quality_uses_the_cross_validated_fine_tuned_model(app_env, tiny_model, monkeypatch):
    from training.jobs import current_job

    monkeypatch.setenv("STUDIO_TRAIN_BASE_MODEL", tiny_model)
    monkeypatch.setenv("STUDIO_TRAIN_MAX_STEPS", "2")
    monkeypatch.setenv("STUDIO_TRAIN_BATCH_SIZE", "8")
    ws = app_env
    snapshot = ws.sync().snapshot
    at = page("quality").run()
    at.button[0].click().run()  # a report first: the cross-validation section sits below it
    issues = ws.quality.assessment(snapshot).issues
    flagged = int((issues["is_issue"] & (issues["issue_type"] == "label_issue")).sum())
    at.button(key="crossval").click().run()
    assert any("Started job" in v for v in texts(at, "success")), (texts(at, "error"), at.exception)
    deadline = time.monotonic() + 240
    while current_job(jobs_root=ws.jobs_root).active and time.monotonic() < deadline:
        time.sleep(1)
    job = current_job(jobs_root=ws.jobs_root)
    assert job.kind == "crossval" and job.state == "succeeded", job.error + job.traceback
    at = page("quality").run()
    at.button[0].click().run()
    assert not at.exception
    stored = ws.quality.assessment(snapshot).meta["external"]
    assert stored["snapshot_id"] == snapshot.id and stored["excluded"] == flagged  # folds skip flagged labels
    assert "external" in ws.quality.assessment(snapshot).meta["model_scores"]
    assert any("cross-validated" in c.value for c in at.caption)


def test_curate_preview_and_export_is_content_addressed(app_env):
    app_env.sync()
    at = page("curate").run()
    at.slider[0].set_value(0.7).run()  # train share
    assert "Test share: 0.20" in " ".join(c.value for c in at.caption)  # follows the sliders before saving
    at.button(key="curate_save").click().run()  # save settings and preview
    assert not at.exception
    from studio.config import load_config
    from studio.workspace import Workspace

    fresh = Workspace(load_config())  # as `studio train` in another process sees it
    assert fresh.cfg.curate.ratios[0] == 0.7 and fresh.curation.saved_curate_settings() is not None
    export = next(b for b in at.button if b.label.startswith("Export"))
    export.click().run()
    first = texts(at, "success")[-1]
    assert "written" in first and "test set `" in first
    next(b for b in at.button if b.label.startswith("Export")).click().run()
    assert "already existed" in texts(at, "success")[-1]
    assert any("keep the split earlier data versions gave them" in c.value for c in at.caption)

    # Other ratios move nothing by themselves; the re-split says what moves, and asks before it does it.
    at.slider[0].set_value(0.6).run()
    at.button(key="curate_save").click().run()
    assert any("keep it" in i.value and "Re-split" in i.value for i in at.info)
    at.button(key="resplit_preview").click().run()
    assert any("would change split" in m.value for m in at.markdown)
    assert at.button(key="resplit_go").disabled
    at.checkbox(key="resplit_sure").check().run()
    at.button(key="resplit_go").click().run()
    assert not at.exception and "written" in texts(at, "success")[-1]
    assert app_env.curation.split_ledger().ratios[0] == 0.6
    assert list((app_env.project_dir / "split_history").glob("splits-*.json"))
    at.button(key="curate_forget").click().run()  # back to studio.toml's [curate]
    assert Workspace(load_config()).cfg.curate.ratios[0] == 0.8 and not app_env.curation.curate_settings_file.exists()


def test_pages_work_on_the_stored_snapshot_when_label_studio_is_down(app_env, monkeypatch, tmp_path, capsys):
    """Label Studio down: the pages that read snapshots show the newest stored one with a warning, and a review
    decision taken meanwhile is recorded (nothing needs Label Studio to be kept); the CLI works on it too."""
    from studio import cli
    from tests.conftest import free_port

    ws = app_env
    snapshot = ws.sync().snapshot
    ws.quality.assess(snapshot)
    config = tmp_path / "down.toml"
    config.write_text(open(ws.cfg.source).read().replace(ws.url, f"http://127.0.0.1:{free_port()}"))
    monkeypatch.setenv("STUDIO_CONFIG", str(config))
    for name in ("quality", "curate", "active"):
        at = page(name).run()
        assert not at.exception, name
        assert any("not reachable" in w and "newest stored snapshot" in w for w in texts(at, "warning")), name
    at = page("quality").run()
    assert {m.label for m in at.metric} >= {"label issue", "decided"}
    at.text_input(key="author_field").set_value("lead@example.org")  # no Label Studio login to fill it with
    at.button(key="one_keep").click().run()
    assert ws.decisions(snapshot.manifest["project_id"]).read().iloc[-1]["author"] == "lead@example.org"
    capsys.readouterr()
    assert cli.main(["autofix", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "warning: Label Studio is not reachable" in out and "newest stored snapshot" in out, out
    assert cli.main(["decisions"]) == 0  # the decision log is on disk: no Label Studio needed to read it
    assert "lead@example.org" in capsys.readouterr().out


@pytest.mark.training
def test_train_runs_and_active_flow(app_env, tiny_model, monkeypatch):
    monkeypatch.setenv("STUDIO_TRAIN_BASE_MODEL", tiny_model)
    monkeypatch.setenv("STUDIO_TRAIN_MAX_STEPS", "2")
    monkeypatch.setenv("STUDIO_TRAIN_BATCH_SIZE", "8")
    from studio.review import Decision

    ws = app_env
    snapshot = ws.sync().snapshot
    labeled = snapshot.labeled()
    task, label = int(labeled["task_id"].iloc[0]), labeled["label"].iloc[0]
    ws.decisions(snapshot.manifest["project_id"]).append([Decision(task, "keep", "lead@example.org", snapshot.id)],
                                                         classes=snapshot.schema.classes)
    relabel_in_label_studio(ws, task, next(c for c in snapshot.schema.classes if c != label))
    at = page("train").run()
    assert any("No training job" in m.value for m in at.markdown)
    at.button[0].click().run()
    assert any("Started job" in v for v in texts(at, "success")), texts(at, "error")
    assert any("1 review decision(s) were taken on a label" in v for v in texts(at, "warning"))  # trains anyway
    at.button[0].click().run()  # a second click while the job runs shows it instead of starting another
    assert any("already running" in v for v in texts(at, "info"))
    from training.jobs import current_job

    deadline = time.monotonic() + 240
    while current_job(jobs_root=app_env.jobs_root).active and time.monotonic() < deadline:
        time.sleep(1)
    job = current_job(jobs_root=app_env.jobs_root)
    assert job.state == "succeeded", job.error
    at = page("train").run()
    assert any(f"Finished: run `{job.run_id}`" in v and "Kept " in v for v in texts(at, "success"))

    at = page("runs").run()
    assert not at.exception
    assert job.run_id in at.dataframe[0].value["run"].tolist()

    at = page("active").run()
    at.button[0].click().run()  # score the pool
    assert not at.exception and len(at.dataframe) >= 1
    push = next(b for b in at.button if b.label.startswith("Push predictions"))
    push.click().run()
    assert any("in the diverse_margin order: Label Studio serves the lowest score first" in v and "order-only" in v
               for v in texts(at, "success")), texts(at, "success")


def test_active_scores_with_the_fast_learner_before_any_run(app_env):
    ws = app_env
    snapshot = ws.sync().snapshot
    at = page("active").run()
    at.selectbox[0].set_value("run").run()  # no training run yet: a diverse cold start, nothing to push
    at.button[0].click().run()
    assert not at.exception and any("none: cold start" in s.value for s in at.subheader)
    assert not any(b.label.startswith("Push predictions") for b in at.button)

    at.selectbox[0].set_value("auto").run()  # auto without a run = the fast learner on today's labels
    at.button[0].click().run()
    version = f"fast-{snapshot.id}"
    assert not at.exception and any(version in s.value for s in at.subheader), [s.value for s in at.subheader]
    push = next(b for b in at.button if b.label.startswith("Push predictions"))
    push.click().run()
    assert any("in the diverse_margin order: Label Studio serves the lowest score first" in v and "order-only" in v
               for v in texts(at, "success")), texts(at, "success")
    assert ws.client.model_versions(ws.project().id) == [version]


@pytest.mark.training
def test_cli_crossval_runs_as_the_job_and_shares_its_lock(app_env, tiny_model, monkeypatch, capsys):
    from studio import cli
    from training.jobs import cancel_job, current_job

    ws = app_env
    ws.sync()
    monkeypatch.setenv("STUDIO_TRAIN_BASE_MODEL", tiny_model)
    monkeypatch.setenv("STUDIO_TRAIN_BATCH_SIZE", "8")
    monkeypatch.setenv("STUDIO_TRAIN_EPOCHS", "500")  # long enough to be running when the second start comes
    monkeypatch.setenv("STUDIO_TRAIN_EARLY_STOPPING_PATIENCE", "0")
    assert cli.main(["crossval", "--background"]) == 0
    running = current_job(jobs_root=ws.jobs_root)
    assert cli.main(["crossval"]) == 2  # the foreground command is the same job: refused while one runs
    assert "still running" in capsys.readouterr().err
    assert cancel_job(running.id, jobs_root=ws.jobs_root, wait_s=60).state == "cancelled"

    monkeypatch.setenv("STUDIO_TRAIN_EPOCHS", "1")
    monkeypatch.setenv("STUDIO_TRAIN_MAX_STEPS", "2")
    assert cli.main(["crossval"]) == 0
    out = capsys.readouterr().out
    assert "crossval_probs.parquet" in out
    assert current_job(jobs_root=ws.jobs_root).state == "succeeded"
    assert cli.main(["train", "--no-sync"]) == 0  # foreground training follows its job the same way
    assert "now the current model" in capsys.readouterr().out
    assert current_job(jobs_root=ws.jobs_root).kind == "train"


def test_needs_review_round_trip_brings_the_annotators_answers_back(app_env, capsys):
    """Send three label issues to Label Studio; there one annotator takes the suggestion, a second annotator keeps
    the given label, one is not touched; the next sync brings those answers back to the curated view, the re-review
    outcomes (page and CLI) and the auto-fix track record."""
    from studio import cli
    from studio.rereview import KEPT, TOOK, WAITING
    from studio.review import apply_decisions, review_requests

    ws = app_env
    snapshot = ws.sync().snapshot
    report = ws.quality.assess(snapshot)
    rows = report.issues[(report.issues["issue_type"] == "label_issue") & (report.issues["suggested_label"] != "")]
    rows = rows.sort_values("score").head(3)
    assert len(rows) == 3, report.issues
    assert ws.review.send_for_review(snapshot, review_requests(rows))[0] == 3
    took, kept, waiting = (int(t) for t in rows["task_id"])
    by_task = rows.set_index("task_id")
    suggestion, given = by_task.loc[took, "suggested_label"], by_task.loc[kept, "given_label"]
    mine = snapshot.annotations[snapshot.annotations["task_id"] == took]
    for annotation_id in mine["annotation_id"]:  # every annotator of the task changes their mind in the browser
        ws.client.update_annotation(int(annotation_id), snapshot.schema.result(suggestion))
    reviewer = ws.client.create_user("reviewer@example.org")
    ws.client.create_annotation(kept, snapshot.schema.result(given), completed_by=reviewer)

    new = ws.sync().snapshot
    assert new.id != snapshot.id
    # The reviewed tasks leave the "Needs review" tab with the sync; the one still waiting stays.
    project_id = ws.project().id
    tab = next(v["id"] for v in ws.client.request("GET", "api/dm/views", params={"project": project_id})
               if v["data"]["title"] == "Needs review")
    assert ws.client.view_task_ids(project_id, tab) == [waiting]
    outcomes = ws.review.rereview_outcomes(new).set_index("task_id")
    assert outcomes["outcome"].to_dict() == {took: TOOK, kept: KEPT, waiting: WAITING}
    assert outcomes.loc[kept, "reviewed_by"] == "reviewer@example.org"
    curated = apply_decisions(new.labeled(), ws.decisions(new.manifest["project_id"]).read(),
                              kind=new.schema.kind).set_index("task_id")
    assert curated.loc[took, "label"] == suggestion  # the correction is in the data every later stage reads
    assert cli.main(["rereview"]) == 0
    assert "3 tasks sent for re-review" in capsys.readouterr().out

    ws.quality.assess(new)
    at = page("quality").run()
    metrics = {m.label: int(m.value) for m in at.metric}
    assert (metrics["took the suggestion"], metrics["kept the label"], metrics["waiting"]) == (1, 1, 1)
    at.toggle[0].set_value(False).run()  # every label_issue row: the queue says which are out for re-review
    queue = next(d.value for d in at.dataframe if "re_review" in d.value.columns).set_index("task_id")
    assert queue.loc[[took, kept, waiting], "re_review"].tolist() == [TOOK, KEPT, WAITING]
    record = ws.review.suggestion_track_record(new).set_index("task_id")
    assert record.loc[[took, kept], "taken"].tolist() == [True, False]
    assert set(record.loc[[took, kept], "judged_in"]) == {"Label Studio"}
    at.slider(key="auto_fix_threshold").set_value(0.05).run()
    line = ("People reviewed 2 flagged labels whose suggestion the model gives 0.05 or more and took the suggestion "
            "for 1")
    assert any(line in v for v in texts(at, "markdown")), texts(at, "markdown")


def test_decisions_on_labels_annotators_changed_are_listed_and_settled(app_env, capsys):
    """A decision taken before the annotators changed the label keeps applying, but sync, the Quality and Curate
    pages and `studio outdated` say so; confirming it again or undoing it settles it."""
    from studio import cli
    from studio.review import Decision, apply_decisions

    ws = app_env
    snapshot = ws.sync().snapshot
    pid, classes = snapshot.manifest["project_id"], list(snapshot.schema.classes)
    labeled = snapshot.labeled().set_index("task_id")
    first, second = (int(t) for t in labeled.index[:2])
    others = [c for c in classes if c not in set(labeled.loc[[first, second], "label"])]
    ws.decisions(pid).append([Decision(first, "relabel", "lead@example.org", snapshot.id, label=others[0]),
                              Decision(second, "keep", "lead@example.org", snapshot.id)], classes=classes)

    def annotators_change(task: int, label: str) -> None:
        relabel_in_label_studio(ws, task, label)

    annotators_change(first, others[1])
    annotators_change(second, others[2])
    assert cli.main(["sync"]) == 0
    assert "2 review decision(s) were taken on a label the annotators have changed" in capsys.readouterr().out
    new = ws.latest_snapshot()
    outdated = ws.review.outdated_decisions(new).set_index("task_id")
    assert outdated[["label_then", "label_now"]].to_dict("index") == {
        first: {"label_then": labeled.loc[first, "label"], "label_now": others[1]},
        second: {"label_then": labeled.loc[second, "label"], "label_now": others[2]}}
    curated = apply_decisions(new.labeled(), ws.decisions(pid).read(), kind=new.schema.kind).set_index("task_id")
    assert curated.loc[first, "label"] == others[0]  # the person's decision still applies

    at = page("curate").run()
    assert any("2 review decision(s)" in v for v in texts(at, "warning"))
    at.text_input(key="author_field").set_value("lead@example.org")
    at.button(key="outdated_confirm").click().run()
    assert any("Confirmed 2 decision(s)" in v for v in texts(at, "success")), texts(at, "error")
    assert ws.review.outdated_decisions(new).empty

    annotators_change(first, others[3])
    at = page("overview").run()
    next(b for b in at.button if b.label == "Sync").click().run()
    assert any("1 review decision(s) were taken on a label" in v for v in texts(at, "warning")), texts(at, "warning")
    new = ws.latest_snapshot()
    assert cli.main(["outdated"]) == 0 and "1 decision(s) still apply" in capsys.readouterr().out
    assert cli.main(["outdated", "--undo", "--author", "lead@example.org"]) == 0
    assert "Undid 1 decision(s)" in capsys.readouterr().out
    curated = apply_decisions(new.labeled(), ws.decisions(pid).read(), kind=new.schema.kind).set_index("task_id")
    assert curated.loc[first, "label"] == others[3] and curated.loc[second, "decision"] == "keep"
    assert ws.review.outdated_decisions(new).empty
    # The log keeps all of it: `studio decisions` shows what is in force, --all the history with its states.
    assert cli.main(["decisions"]) == 0
    out = capsys.readouterr().out
    assert "In force: 1 keep" in out and "confirmed again" in out
    assert cli.main(["decisions", "--all", "--task", str(first)]) == 0
    out = capsys.readouterr().out
    assert out.count("undone") == 2 and "In force: none (4 rows shown)" in out, out  # 2 decisions, 2 undos
    at = page("curate").run()
    assert any("1 decision(s) in force: 1 keep." in v for v in texts(at, "markdown")), texts(at, "markdown")


def test_annotators_against_the_model_and_a_second_opinion(app_env):
    """Without overlap the model still rates each annotator; asking a second annotator puts a sample of their tasks
    back in Label Studio's labeling stream."""
    ws = app_env
    project = ws.project()
    schema = parse_labeling_config(project.label_config)
    solo = ws.client.create_user("solo@example.org")  # the demo's tasks all have two annotators: one alone here
    unlabeled = [t["id"] for t in ws.client.export_tasks(project.id) if not t["annotations"]][:6]
    for task in unlabeled:
        ws.client.create_annotation(task, schema.result(schema.classes[0]), completed_by=solo)
    snapshot = ws.sync().snapshot
    ws.quality.assess(snapshot)
    at = page("quality").run()
    assert any(s.value == "Annotators against the model (tasks labeled alone)" for s in at.subheader)
    table = next(d.value for d in at.dataframe if "against_others" in d.value.columns)
    who = "solo@example.org"
    assert table.set_index("annotator").loc[who, "tasks"] == 6
    at.selectbox(key="second_who").set_value(who).run()
    at.number_input(key="second_n").set_value(3).run()
    at.button(key="second_go").click().run()
    assert not at.exception
    assert any(s.value.startswith("3 of ") for s in at.success), (texts(at, "success"), texts(at, "error"))
    tasks = [ws.client.request("GET", f"api/tasks/{t}") for t in unlabeled]
    waiting = {t["id"] for t in tasks if t["overlap"] > t["total_annotations"] and not t["is_labeled"]}
    assert len(waiting) == 3 and waiting <= set(unlabeled)


def test_a_sync_computes_the_quality_report_in_the_background(app_env):
    """After the Overview page's sync, the Quality page shows the report being computed, then the report, with no
    click on Run quality checks."""
    from studio.app import state

    at = page("overview").run()
    at.button[0].click().run()  # Sync
    assert any("being computed in the background" in v for v in texts(at, "success")), texts(at, "success")
    snapshot = app_env.latest_snapshot(app_env.project().id)
    running = state._BACKGROUND.get(snapshot.id)
    assert running is not None or app_env.quality.assessment(snapshot) is not None
    if running is not None:
        quality = page("quality").run()
        assert not quality.exception
        running["thread"].join(300)
        assert running["error"] is None, running["error"]
    quality = page("quality").run()
    assert not quality.exception and any(m.label == "label issue" for m in quality.metric)
