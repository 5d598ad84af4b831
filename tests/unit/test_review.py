import pandas as pd
import pytest

from studio.errors import DataError
from studio.review import Decision, DecisionLog, apply_decisions

CLASSES = ("a", "b", "c")


@pytest.fixture
def labeled():
    return pd.DataFrame({"task_id": [1, 2, 3], "text": ["x", "y", "z"], "label": ["a", "b", "c"]})


def test_decisions_apply_without_touching_given_labels(tmp_path, labeled):
    log = DecisionLog(tmp_path, project_id=1)
    log.append([Decision(1, "relabel", "lead@x", "s1", label="b", note="clearly b"),
                Decision(2, "exclude", "lead@x", "s1"),
                Decision(3, "keep", "lead@x", "s1")], classes=CLASSES)
    curated = apply_decisions(labeled, log.read()).set_index("task_id")
    assert list(curated.index) == [1, 3]
    assert curated.loc[1, "label"] == "b" and curated.loc[1, "given_label"] == "a"
    assert curated.loc[3, "decision"] == "keep" and curated.loc[1, "decided_by"] == "lead@x"
    assert labeled["label"].tolist() == ["a", "b", "c"]  # input untouched


def test_undo_and_latest_wins(tmp_path, labeled):
    log = DecisionLog(tmp_path, project_id=1)
    log.append([Decision(2, "exclude", "u", "s1")], classes=CLASSES)
    log.append([Decision(1, "relabel", "u", "s1", label="c")], classes=CLASSES)
    log.append([Decision(1, "relabel", "u", "s2", label="b")], classes=CLASSES)
    assert apply_decisions(labeled, log.read()).set_index("task_id").loc[1, "label"] == "b"
    log.undo_last(1, author="u", snapshot_id="s2")  # back to the earlier relabel
    assert apply_decisions(labeled, log.read()).set_index("task_id").loc[1, "label"] == "c"
    log.undo_last(2, author="u", snapshot_id="s2")
    assert 2 in set(apply_decisions(labeled, log.read())["task_id"])
    assert len(log.read()) == 5  # everything appended, nothing rewritten
    assert log.undo_last(3, author="u", snapshot_id="s2") is None


def test_bad_decisions_refused(tmp_path):
    log = DecisionLog(tmp_path, project_id=1)
    with pytest.raises(DataError, match="not a class"):
        log.append([Decision(1, "relabel", "u", "s", label="zzz")], classes=CLASSES)
    with pytest.raises(DataError, match="author"):
        log.append([Decision(1, "keep", " ", "s")], classes=CLASSES)
    assert log.read().empty
