import pandas as pd
import pytest

from studio.errors import DataError
from studio.review import Decision, DecisionLog, apply_decisions
from studio.tasks import kind_named

CLASSES = ("a", "b", "c")
SINGLE = kind_named("single_label", CLASSES)


@pytest.fixture
def labeled():
    return pd.DataFrame({"task_id": [1, 2, 3], "text": ["x", "y", "z"], "label": ["a", "b", "c"]})


def test_decisions_apply_without_touching_given_labels(tmp_path, labeled):
    log = DecisionLog(tmp_path, project_id=1)
    log.append([Decision(1, "relabel", "lead@x", "s1", label="b", note="clearly b"),
                Decision(2, "exclude", "lead@x", "s1"),
                Decision(3, "keep", "lead@x", "s1")], classes=CLASSES)
    curated = apply_decisions(labeled, log.read(), kind=SINGLE).set_index("task_id")
    assert list(curated.index) == [1, 3]
    assert curated.loc[1, "label"] == "b" and curated.loc[1, "given_label"] == "a"
    assert curated.loc[3, "decision"] == "keep" and curated.loc[1, "decided_by"] == "lead@x"
    assert labeled["label"].tolist() == ["a", "b", "c"]  # input untouched


def test_undo_and_latest_wins(tmp_path, labeled):
    log = DecisionLog(tmp_path, project_id=1)
    log.append([Decision(2, "exclude", "u", "s1")], classes=CLASSES)
    log.append([Decision(1, "relabel", "u", "s1", label="c")], classes=CLASSES)
    log.append([Decision(1, "relabel", "u", "s2", label="b")], classes=CLASSES)
    assert apply_decisions(labeled, log.read(), kind=SINGLE).set_index("task_id").loc[1, "label"] == "b"
    log.undo_last(1, author="u", snapshot_id="s2")  # back to the earlier relabel
    assert apply_decisions(labeled, log.read(), kind=SINGLE).set_index("task_id").loc[1, "label"] == "c"
    log.undo_last(2, author="u", snapshot_id="s2")
    assert 2 in set(apply_decisions(labeled, log.read(), kind=SINGLE)["task_id"])
    assert len(log.read()) == 5  # everything appended, nothing rewritten
    assert log.undo_last(3, author="u", snapshot_id="s2") is None


def test_bad_decisions_refused(tmp_path):
    log = DecisionLog(tmp_path, project_id=1)
    with pytest.raises(DataError, match="not a class"):
        log.append([Decision(1, "relabel", "u", "s", label="zzz")], classes=CLASSES)
    with pytest.raises(DataError, match="author"):
        log.append([Decision(1, "keep", " ", "s")], classes=CLASSES)
    assert log.read().empty


def issue_table():
    """Five flagged label issues (confidence 0.95 .. 0.55, one without a suggestion) and one outlier."""
    return pd.DataFrame({
        "task_id": [1, 2, 3, 4, 5, 6], "issue_type": ["label_issue"] * 5 + ["outlier"],
        "is_issue": [True] * 6, "score": [0.01, 0.02, 0.03, 0.04, 0.05, 0.0],
        "given_label": ["a", "a", "b", "b", "c", "c"], "suggested_label": ["b", "c", "a", "", "a", ""],
        "confidence": [0.95, 0.91, 0.55, float("nan"), 0.92, float("nan")]})


def test_auto_fix_takes_only_confident_suggestions_and_leaves_decisions_alone(tmp_path, labeled):
    from studio.review import auto_fix_decisions, auto_fix_plan, review_requests

    log = DecisionLog(tmp_path, project_id=1)
    log.append([Decision(5, "keep", "lead@x", "s1", note="checked: it is c")], classes=CLASSES)
    fix, rest = auto_fix_plan(issue_table(), log.read(), min_confidence=0.9)
    assert fix["task_id"].tolist() == [1, 2]        # most confident first; 5 was decided by a person
    assert rest["task_id"].tolist() == [3, 4]       # below the threshold, or nothing to suggest; no outliers
    decisions = auto_fix_decisions(fix, author="lead@x", snapshot_id="s1", min_confidence=0.9)
    log.append(decisions, classes=CLASSES)
    curated = apply_decisions(pd.DataFrame({"task_id": [1, 2, 5], "text": ["x", "y", "z"], "label": ["a"] * 3}),
                              log.read(), kind=SINGLE).set_index("task_id")
    assert curated["label"].to_dict() == {1: "b", 2: "c", 5: "a"} and curated.loc[5, "decision"] == "keep"
    assert "auto-fix" in log.read().iloc[-1]["note"] and "0.91" in log.read().iloc[-1]["note"]
    again, _ = auto_fix_plan(issue_table(), log.read(), min_confidence=0.9)
    assert again.empty                              # a second run does not decide twice
    log.undo_last(1, author="lead@x", snapshot_id="s1")
    assert auto_fix_plan(issue_table(), log.read(), min_confidence=0.9)[0]["task_id"].tolist() == [1]
    only_b, rest_b = auto_fix_plan(issue_table(), DecisionLog(tmp_path / "empty", 1).read(), min_confidence=0.5,
                                   classes=["b"])
    assert only_b["task_id"].tolist() == [3] and rest_b["task_id"].tolist() == [4]  # given label "b" only
    assert review_requests(rest)[["task_id", "label", "score", "suggested_label"]].to_dict("list") == {
        # the score Label Studio shows beside the suggestion is the model's probability of it (0.55), not the
        # label-quality score; without a suggestion there is no such probability and the quality score stays
        "task_id": [3, 4], "label": ["a", "b"], "score": [0.55, 0.04], "suggested_label": ["a", ""]}
    with pytest.raises(DataError, match="not a probability"):
        auto_fix_plan(issue_table(), log.read(), min_confidence=0)


def test_track_record_counts_what_people_did_with_the_suggestions(tmp_path):
    import json

    from studio.review import (auto_fix_decisions, auto_fix_plan, suggestion_track_record, track_record_by,
                               track_record_line)

    log = DecisionLog(tmp_path, project_id=1)
    assert track_record_line(suggestion_track_record(issue_table(), log.read()), 0.9).startswith("No flagged label")
    log.append([Decision(2, "relabel", "lead@x", "s1", label="c"),    # took the suggestion
                Decision(3, "relabel", "lead@x", "s1", label="c"),    # another class: suggestion not taken
                Decision(5, "keep", "lead@x", "s1"),                  # given label right: not taken
                Decision(4, "relabel", "lead@x", "s1", label="a"),    # no suggestion to judge
                Decision(6, "exclude", "lead@x", "s1")], classes=CLASSES)
    fix, _ = auto_fix_plan(issue_table(), log.read(), min_confidence=0.9)
    log.append(auto_fix_decisions(fix, author="lead@x", snapshot_id="s1", min_confidence=0.9), classes=CLASSES)
    record = suggestion_track_record(issue_table(), log.read())
    assert record.set_index("task_id")["taken"].to_dict() == {2: True, 3: False, 5: False}  # auto-fix's 1 left out
    assert track_record_line(record, 0.9) == ("People reviewed 2 flagged labels whose suggestion the model gives "
                                              "0.9 or more and took the suggestion for 1 (50%). That is too few "
                                              "to judge the threshold by: the share moves by 50% with each review; "
                                              "wait for 10 or more.")
    by_class = track_record_by(record, "given_label")
    assert by_class.to_dict("list") == {"given_label": ["b", "c", "a"], "reviewed": [1, 1, 1], "taken": [0, 0, 1],
                                        "share": [0.0, 0.0, 1.0]}
    log.undo_last(2, author="lead@x", snapshot_id="s1")
    assert 2 not in set(suggestion_track_record(issue_table(), log.read())["task_id"])
    # A log written before decisions had a source: auto-fix's are recognised by their note.
    old = DecisionLog(tmp_path / "old", project_id=1)
    old.file.parent.mkdir()
    rows = [{k: v for k, v in json.loads(line).items() if k != "source"} for line in log.file.read_text().splitlines()]
    old.file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert old.read()["source"].tolist() == log.read()["source"].tolist()
    assert (log.read()["source"] == "auto-fix").sum() == 1


def test_track_record_calibration_bands():
    from studio.review import track_record_calibration

    record = pd.DataFrame({"confidence": [0.9, 0.95, 1.0, 0.59, 0.6, 0.61], "given_label": list("aaabbb"),
                           "taken": [True, True, False, False, True, True]})
    bands = track_record_calibration(record)
    assert bands["probability"].tolist() == [0.5, 0.6, 0.9]     # 0.9 and 1.0 fall in the top band
    assert bands["reviewed"].tolist() == [1, 2, 3] and bands["taken"].tolist() == [0, 2, 2]


def test_outdated_decisions_are_listed_until_confirmed_again_or_undone(tmp_path):
    from studio.review import confirm_again, effective_decisions, outdated_decisions

    log = DecisionLog(tmp_path, project_id=1)
    log.append([Decision(1, "relabel", "lead@x", "s1", label="b"),   # annotators then changed a -> c
                Decision(2, "exclude", "lead@x", "s1"),              # label unchanged
                Decision(3, "keep", "lead@x", "s1"),                 # changed b -> a
                Decision(4, "keep", "lead@x", "gone")], classes=CLASSES)  # its snapshot was deleted
    snapshots = {"s1": pd.Series({1: "a", 2: "b", 3: "b", 4: "a"})}
    now = pd.Series({1: "c", 2: "b", 3: "a", 4: "c"})
    labels_at = snapshots.get
    out = outdated_decisions(log.read(), labels_at, now)
    assert out[["task_id", "action", "label_then", "label_now"]].to_dict("list") == {
        "task_id": [1, 3], "action": ["relabel", "keep"], "label_then": ["a", "b"], "label_now": ["c", "a"]}
    curated = apply_decisions(pd.DataFrame({"task_id": [1], "text": ["x"], "label": ["c"]}), log.read(), kind=SINGLE)
    assert curated["label"].tolist() == ["b"]  # still applies: a person decided
    again = confirm_again(out, author="lead@x", snapshot_id="s2")
    assert [(d.task_id, d.action, d.label) for d in again] == [(1, "relabel", "b"), (3, "keep", None)]
    assert "from 'a' to 'c'" in again[0].note
    log.append(again, classes=CLASSES)
    snapshots["s2"] = now
    assert outdated_decisions(log.read(), labels_at, now).empty
    assert effective_decisions(log.read()).set_index("task_id").loc[1, "snapshot_id"] == "s2"
    # Undoing task 1 for good takes both its decisions back: undo_last would bring the first into force again.
    assert log.undo_all([1], author="lead@x", snapshot_id="s2") == 2
    assert 1 not in set(effective_decisions(log.read())["task_id"])
    assert log.undo_all([1], author="lead@x", snapshot_id="s2") == 0


def test_decision_history_states(tmp_path):
    from studio.review import decision_history

    log = DecisionLog(tmp_path, project_id=1)
    assert decision_history(log.read()).empty
    log.append([Decision(1, "relabel", "lead@x", "s1", label="b", created_at="2026-01-01T00:00:01")],
               classes=CLASSES)
    log.append([Decision(1, "relabel", "lead@x", "s1", label="c", created_at="2026-01-01T00:00:02"),
                Decision(2, "exclude", "lead@x", "s1", created_at="2026-01-01T00:00:03")], classes=CLASSES)
    log.undo_last(2, author="lead@x", snapshot_id="s1")
    history = decision_history(log.read())
    assert history[["task_id", "action", "state"]].values.tolist() == [
        [2, "undo", "undo"], [2, "exclude", "undone"], [1, "relabel", "in force"], [1, "relabel", "superseded"]]
