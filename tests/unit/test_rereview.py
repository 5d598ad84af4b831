import pandas as pd

from studio.rereview import GONE, KEPT, OTHER, TOOK, WAITING, RequestLog, rereview_outcomes
from studio.review import DecisionLog, review_requests, suggestion_track_record


def annotations(rows):
    """(annotation_id, task_id, annotator, label, updated_at, cancelled) -> an annotation table as snapshots hold."""
    return pd.DataFrame([{"annotation_id": a, "task_id": t, "annotator": who, "labels": [label] if label else [],
                          "updated_at": u, "was_cancelled": c} for a, t, who, label, u, c in rows])


def test_outcomes_of_a_re_review_round(tmp_path):
    issues = pd.DataFrame({"task_id": [1, 2, 3, 4, 5], "given_label": ["a"] * 5,
                           "suggested_label": ["b", "b", "b", "", "b"], "score": [0.1] * 5,
                           "confidence": [0.8, 0.7, 0.6, float("nan"), 0.5]})
    log = RequestLog(tmp_path, project_id=1)
    assert log.read().empty and rereview_outcomes(log.read(), lambda s: None, annotations([]), []).empty
    log.append(review_requests(issues), snapshot_id="s1")
    then = annotations([(i, i, "ann@x", "a", "2026-01-01", False) for i in range(1, 6)])
    now = annotations([
        (1, 1, "ann@x", "b", "2026-02-01", False),       # edited to the suggestion
        (2, 2, "ann@x", "a", "2026-01-01", False),       # untouched ...
        (20, 2, "rev@x", "c", "2026-02-02", True),       # ... and a cancelled skip: still waiting
        (3, 3, "ann@x", "a", "2026-01-01", False),
        (30, 3, "rev@x", "a", "2026-02-03", False),      # a second annotator confirms the given label
        (4, 4, "ann@x", "c", "2026-02-04", False),       # no suggestion was sent; another label
        (5, 5, "ann@x", "c", "2026-02-05", False)])      # neither the suggestion nor the given label
    out = rereview_outcomes(log.read(), {"s1": then}.get, now, range(1, 6)).set_index("task_id")
    assert out["outcome"].to_dict() == {1: TOOK, 2: WAITING, 3: KEPT, 4: OTHER, 5: OTHER}
    gone = rereview_outcomes(log.read(), {"s1": then}.get, now, [1, 3, 4, 5]).set_index("task_id")
    assert gone.loc[2, "outcome"] == GONE  # task 2 was deleted in Label Studio
    assert out.loc[3, "reviewed_by"] == "rev@x" and out.loc[1, "new_label"] == "b" and out.loc[2, "new_label"] == ""
    # The request's snapshot is gone: every live annotation counts as new.
    lost = rereview_outcomes(log.read(), lambda s: None, then, range(1, 6)).set_index("task_id")
    assert lost["outcome"].tolist() == [KEPT] * 5
    # Sent again on a later snapshot: the newest request counts, against that snapshot.
    log.append(review_requests(issues[issues["task_id"] == 1].assign(suggested_label="c")), snapshot_id="s2")
    out = rereview_outcomes(log.read(), {"s1": then, "s2": now}.get, now, range(1, 6)).set_index("task_id")
    assert out.loc[1, "outcome"] == WAITING and out.loc[1, "suggested_label"] == "c" and len(out) == 5

    # The track record counts the reviewed ones that had a suggestion; a decision here takes precedence.
    record = suggestion_track_record(issues.assign(issue_type="label_issue", is_issue=True),
                                     DecisionLog(tmp_path / "d", 1).read(), out.reset_index())
    assert record.set_index("task_id")["taken"].to_dict() == {3: False, 5: False}
    assert set(record["judged_in"]) == {"Label Studio"}
