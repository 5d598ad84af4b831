"""The `studio` command line as a person meets it: plain aligned text, help on every option, a clear error for a
bad class, quiet when its reader goes away. Workspaces are faked: nothing here needs Label Studio."""

import os
import subprocess
import sys
from argparse import Namespace
from types import SimpleNamespace

import pandas as pd
import pytest

from studio import cli
from studio.cli.base import COMMANDS, aligned, bar
from studio.errors import DataError
from studio.review import TRACK_RECORD_COLUMNS, Decision, DecisionLog
from studio.stages.review import ReviewService, check_classes

CLASSES = ["card_arrival", "card_linking", "top_up_failed"]


def _config(tmp_path) -> str:
    """A studio.toml whose state lives in tmp_path, so the commands that read only local state run offline."""
    path = tmp_path / "studio.toml"
    path.write_text('[paths]\nstate_dir = "state"\n')
    return str(path)


@pytest.mark.parametrize("unbuffered", [True, False])
def test_closed_stdout_ends_quietly(tmp_path, unbuffered):
    """`studio snapshots | head` with a reader gone before the first line: no traceback, no "Exception ignored"."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:  # the error then comes from print() inside the command, else from the flush at exit
        env["PYTHONUNBUFFERED"] = "1"
    read_end, write_end = os.pipe()
    os.close(read_end)  # closed before the child starts: every write to its stdout fails
    try:
        done = subprocess.run([sys.executable, "-m", "studio.cli", "--config", _config(tmp_path), "snapshots"],
                              stdout=write_end, stderr=subprocess.PIPE, env=env, timeout=120)
    finally:
        os.close(write_end)
    assert done.stderr.decode() == ""
    assert done.returncode == 141  # 128 + SIGPIPE, as a shell reports `git log | head`


def test_errors_and_messages_print_without_markdown(tmp_path, capsys):
    config = _config(tmp_path)
    assert cli.main(["--config", config, "snapshots"]) == 0
    assert capsys.readouterr().out.strip() == "No snapshots yet: run studio sync."
    assert cli.main(["--config", config, "diff", "nope1", "nope2"]) == 2  # the library's hint has backticks
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Fix: " in err and "`" not in err and "Traceback" not in err


def test_every_option_has_help_and_no_markdown():
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert set(subparsers.choices) == set(COMMANDS)
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"studio {name} {'/'.join(action.option_strings) or action.dest} has no help"
                assert "`" not in action.help
        assert "`" not in (sub.description or "")
    assert "on the current labels (LoRA by default)" in subparsers.choices["train"].description
    assert "LoRA-train" not in subparsers.choices["train"].format_help()


def test_aligned_lines():
    assert aligned({"Project": "demo", "Newest snapshot": "s1"}, indent="  ").splitlines() == [
        "  Project:         demo", "  Newest snapshot: s1"]


def test_check_classes_names_the_known_ones():
    check_classes(None, CLASSES)
    check_classes(["card_linking"], CLASSES)
    with pytest.raises(DataError, match="Class 'card_arival' is not in the labeling config.*Did you mean "
                                        "'card_arrival'") as caught:
        check_classes(["card_linking", "card_arival"], CLASSES)
    assert caught.value.hint == "use one of: card_arrival, card_linking, top_up_failed"
    with pytest.raises(DataError, match="Classes 'x', 'y' are not") as caught:
        check_classes(["x", "y"], [f"c{i}" for i in range(30)])
    assert caught.value.hint.endswith("c19 … (30 in all: see the labeling config)")


def _issues() -> pd.DataFrame:
    """Four confident label issues (tasks 1-4), one unsure (5), two outliers (6, 7)."""
    return pd.DataFrame({
        "task_id": [1, 2, 3, 4, 5, 6, 7],
        "issue_type": ["label_issue"] * 5 + ["outlier"] * 2,
        "is_issue": [True] * 7,
        "score": [0.01, 0.02, 0.03, 0.04, 0.05, 0.0, 0.1],
        "given_label": ["card_arrival", "card_arrival", "card_linking", "top_up_failed", "card_linking",
                        "card_arrival", "card_linking"],
        "suggested_label": ["card_linking", "top_up_failed", "card_arrival", "card_arrival", "card_arrival", "", ""],
        "confidence": [0.99, 0.97, 0.95, 0.93, 0.5, float("nan"), float("nan")],
        "text": [f"text {i}" for i in range(1, 8)],
        "annotators": [["ann"]] * 7,
    })


class FakeReview(ReviewService):
    """The real review service (its auto_fix runs unchanged) with a fixed outdated warning and no track record."""

    def outdated_warning(self, snapshot):
        return "1 review decision(s) are outdated: the Curate page, or `studio outdated`."

    def suggestion_track_record(self, snapshot):
        return pd.DataFrame(columns=TRACK_RECORD_COLUMNS)


class FakeWorkspace:
    """What `studio quality` and `studio autofix` use of a workspace, over one stored report and a real
    decision log."""

    def __init__(self, tmp_path) -> None:
        from studio.tasks import kind_named

        self.snapshot = SimpleNamespace(id="s1", manifest={"project_id": 1},
                                        schema=kind_named("single_label", CLASSES).schema)
        self.report = SimpleNamespace(
            issues=_issues(), annotators=pd.DataFrame(),
            meta={"n_labeled": 40, "model": "ensemble", "classes": CLASSES, "external": None, "warnings": [],
                  "model_scores": {"embedding_lr": 0.97234567891234, "tfidf_nb": 1.3651234, "ensemble": 0.968}})
        self.cfg = SimpleNamespace(quality=SimpleNamespace(auto_fix_confidence=0.9))
        self.state_dir = tmp_path
        self.store = SimpleNamespace(load=lambda snapshot_id: self.snapshot)
        self.log = DecisionLog(tmp_path / "decisions", project_id=1)
        self.quality = SimpleNamespace(assess=lambda snapshot, *, progress=None: self.report,
                                       assessment=lambda snapshot: self.report,
                                       folder=lambda snapshot: tmp_path / "quality" / snapshot.id)
        self.review = FakeReview(self)

    def decisions(self, project_id):
        return self.log


def _quality(ws, capsys) -> str:
    assert COMMANDS["quality"][0](ws, Namespace(snapshot="s1", out=None)) == 0
    return capsys.readouterr().out


def test_quality_summary_reads_cleanly_and_agrees_with_autofix(tmp_path, capsys):
    ws = FakeWorkspace(tmp_path)
    ws.log.append([Decision(2, "keep", "lead", "s1"), Decision(3, "exclude", "lead", "s1")], classes=CLASSES)
    out = _quality(ws, capsys)
    assert "log-loss (lower = better): embedding_lr 0.972 · tfidf_nb 1.365 · ensemble 0.968 (chosen)" in out
    assert "\nFlagged:\n  label issue:      5\n  outlier:          2\n" in out
    assert "warning: 1 review decision(s) are outdated: the Curate page, or studio outdated." in out
    assert "2 undecided flagged labels have a suggestion the model gives 0.90 or more (2 more are decided " \
           "already): studio autofix relabels them" in out
    assert "`" not in out and "{" not in out and "issue_type" not in out

    assert COMMANDS["autofix"][0](ws, Namespace(snapshot="s1", min_confidence=None, classes=None, author="lead",
                                                send_rest=False, dry_run=True)) == 0
    assert "Would relabel 2 of 3 undecided flagged label issues" in capsys.readouterr().out


def test_quality_summary_when_everything_sure_is_decided(tmp_path, capsys):
    ws = FakeWorkspace(tmp_path)
    ws.log.append([Decision(t, "keep", "lead", "s1") for t in (1, 2, 3, 4)], classes=CLASSES)
    assert "\nAll 4 flagged labels with a suggestion the model gives 0.90 or more are decided already.\n" \
        in _quality(ws, capsys)


def test_quality_summary_without_sure_suggestions(tmp_path, capsys):
    ws = FakeWorkspace(tmp_path)
    ws.cfg.quality.auto_fix_confidence = 0.999
    out = _quality(ws, capsys)
    assert "autofix" not in out and "decided" not in out and "\n\n\n" not in out


def test_autofix_refuses_an_unknown_class(tmp_path):
    ws = FakeWorkspace(tmp_path)
    with pytest.raises(DataError, match="Class 'nope' is not in the labeling config"):
        ws.review.auto_fix(ws.snapshot, author="lead", classes=["nope"], dry_run=True)
    fix, rest, _ = ws.review.auto_fix(ws.snapshot, author="lead", classes=["card_arrival"], dry_run=True)
    assert fix["task_id"].tolist() == [1, 2] and rest.empty


def test_status_prints_aligned_lines(capsys):
    counts = {"tasks": 1000, "annotations": 612, "labeled_tasks": 600}
    ls = SimpleNamespace(embedded=True, database="sqlite", database_url="")
    ws = SimpleNamespace(
        url="http://127.0.0.1:8080", cfg=SimpleNamespace(labelstudio=ls), key="intents",
        client=SimpleNamespace(check=lambda: {"email": "lead@example.org"}),
        project=lambda: SimpleNamespace(id=3, title="Banking77 intents", task_number=1000),
        latest_snapshot=lambda project_id: SimpleNamespace(id="s2", manifest={"counts": counts}),
        store=SimpleNamespace(ids=lambda: ["s1", "s2"], damaged=lambda: []))
    assert COMMANDS["status"][0](ws, Namespace()) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Label Studio:    http://127.0.0.1:8080 (embedded, on SQLite)",
        "Logged in as:    lead@example.org",
        "Project:         Banking77 intents (id 3, key intents), 1000 tasks",
        "Snapshots:       2",
        "Newest snapshot: s2",
        "  tasks:         1000",
        "  annotations:   612",
        "  labeled tasks: 600",
    ]


def test_active_ranks_count_from_one(capsys):
    batch = pd.DataFrame({"task_id": [7, 9], "label": ["a", "b"], "confidence": [0.4, 0.5], "text": ["x", "y"],
                          "rank": [0, 1]})
    scored = SimpleNamespace(batch=batch, strategy="diverse_margin", model_version="fast-s1")
    kind = SimpleNamespace(kind=SimpleNamespace(name="single_label"))
    ws = SimpleNamespace(latest_snapshot=lambda project_id: SimpleNamespace(id="s1", schema=kind),
                         project_or_stored=lambda: (SimpleNamespace(id=1), None),
                         active=SimpleNamespace(score_pool=lambda snapshot, **kwargs: scored))
    args = Namespace(strategy="diverse_margin", n=2, scorer=None, push=False, by_confidence=False)
    assert COMMANDS["active"][0](ws, args) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [int(row.split()[0]) for row in rows] == [1, 2]
    assert batch["rank"].tolist() == [0, 1]  # the library's frame is left as it was


def test_active_on_an_answer_project_prints_the_drafts(capsys):
    from studio.drafts import DraftBatch

    pool = pd.DataFrame({"task_id": [4], "text": ["Where is my parcel?"], "draft": ["On the Orders page."],
                         "confidence": [0.61], "rank": [0]})
    kind = SimpleNamespace(kind=SimpleNamespace(name="generation"))
    pushed = []
    ws = SimpleNamespace(latest_snapshot=lambda project_id: SimpleNamespace(id="s1", schema=kind),
                         project_or_stored=lambda: (SimpleNamespace(id=1), None),
                         active=SimpleNamespace(
                             draft_pool=lambda snapshot, **kwargs: DraftBatch(pool, "run-x", "diverse"),
                             push_drafts=lambda batch, **kwargs: pushed.append(batch) or {"pushed": 1},
                             draft_edits=lambda snapshot: (pd.DataFrame(), pd.DataFrame())))
    args = Namespace(strategy="diverse_margin", n=1, scorer=None, push=True, by_confidence=False)
    assert COMMANDS["active"][0](ws, args) == 0
    out = capsys.readouterr().out
    assert "Drafts by run-x for 1 prompts (diverse)" in out and "On the Orders page." in out
    assert "Pushed 1 drafts as run-x" in out and len(pushed) == 1


def test_progress_bar_only_for_real_work(capsys):
    cached = bar("Embedding", unit="text")
    cached(5000, 5000)  # every text came from the cache: one call, already done
    assert capsys.readouterr().err == ""
    work = bar("Embedding", unit="text")
    for done in (64, 128, 192):
        work(done, 192)
    err = capsys.readouterr().err
    assert "192/192" in err and "text/s" in err and "it/s" not in err
