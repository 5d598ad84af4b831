"""Re-review comes to reviewers in Label Studio's own stream: a task sent to the "Needs review" tab is already
labeled, so Label Studio would never serve it again by itself; send_for_review asks for one more annotation."""

import pandas as pd
import pytest

from studio.errors import LabelStudioError
from studio.labeling import parse_labeling_config
from studio.push import send_for_review

pytestmark = pytest.mark.labelstudio


def served(client, project_id):
    try:
        task = client.next_task(project_id)
    except LabelStudioError as exc:  # 404 "There are no tasks for ..." once nothing is left
        assert "no tasks" in str(exc)
        return None
    return task and task["id"]


def test_a_task_sent_for_re_review_is_served_once_more_then_leaves_the_stream(ls_client, project):
    schema = parse_labeling_config(project.label_config)
    ls_client.import_tasks(project.id, [{"data": {"text": t}} for t in ("card lost", "refund", "send money")])
    ids = [t["id"] for t in ls_client.export_tasks(project.id)]
    annotator = ls_client.create_user("first-annotator@tests.local")
    for task in ids:
        ls_client.create_annotation(task, schema.result(schema.classes[0]), completed_by=annotator)
    assert served(ls_client, project.id) is None  # everything is labeled: nothing comes round again

    rows = pd.DataFrame({"task_id": [ids[1]], "label": [schema.classes[1]], "score": [0.9]})
    sent, _ = send_for_review(ls_client, project.id, rows, schema, snapshot_id="s1")
    assert list(sent["task_id"]) == [ids[1]]
    assert served(ls_client, project.id) == ids[1]  # the reviewer (who never labeled it) gets it next
    assert send_for_review(ls_client, project.id, rows, schema, snapshot_id="s1")[0].empty  # sent once
    ls_client.create_annotation(ids[1], schema.result(schema.classes[1]))  # the reviewer's answer
    assert served(ls_client, project.id) is None  # reviewed: it leaves the stream
