"""Against a real Label Studio: import, annotate as two people, sync into snapshots, diff, bad input."""

import pytest

from studio.errors import EmptyDataError, LabelStudioAuthError, LabelStudioUnreachable, ProjectNotFound
from studio.labeling import parse_labeling_config
from studio.labelstudio.client import LabelStudioClient
from studio.snapshot import SnapshotStore, diff_snapshots
from studio.sync import sync_project
from tests.conftest import free_port

pytestmark = pytest.mark.labelstudio


def test_unreachable_and_wrong_token(labelstudio):
    url, _, _ = labelstudio
    with pytest.raises(LabelStudioUnreachable, match="(?s)not reachable.*Fix: start it"):
        LabelStudioClient(f"http://127.0.0.1:{free_port()}", "t").check()
    with pytest.raises(LabelStudioAuthError, match="refused the API token"):
        LabelStudioClient(url, "wrong-token").check()
    with pytest.raises(LabelStudioAuthError, match="No API token"):
        LabelStudioClient(url, "")


def test_missing_and_empty_project(ls_client, project, tmp_path):
    with pytest.raises(ProjectNotFound, match="does not exist"):
        ls_client.get_project(987654)
    with pytest.raises(EmptyDataError, match="has no tasks"):
        sync_project(ls_client, SnapshotStore(tmp_path), project.id)


def test_two_annotators_sync_diff_and_incremental(ls_client, project, tmp_path):
    schema = parse_labeling_config(project.label_config)
    alice = ls_client.create_user("alice@tests.local")
    bob = ls_client.create_user("bob@tests.local")
    texts = ["my card is broken", "refund the fee", "send money abroad", "", "pending transfer"]
    assert ls_client.import_tasks(project.id, [{"data": {"text": t}} for t in texts]) == 5
    records = ls_client.export_tasks(project.id)
    ids = {r["data"]["text"]: r["id"] for r in records}
    ls_client.create_annotation(ids["my card is broken"], schema.result("cards"), completed_by=alice, lead_time=4)
    ls_client.create_annotation(ids["my card is broken"], schema.result("cards"), completed_by=bob)
    ls_client.create_annotation(ids["refund the fee"], schema.result("billing"), completed_by=alice)
    disputed = ls_client.create_annotation(ids["refund the fee"], schema.result("cards"), completed_by=bob)
    ls_client.create_annotation(ids["send money abroad"], schema.result("no-such-class"), completed_by=alice)
    ls_client.create_annotation(ids["pending transfer"], [], completed_by=bob, was_cancelled=True)

    store = SnapshotStore(tmp_path)
    first = sync_project(ls_client, store, project.id)
    snap = first.snapshot
    assert first.created and first.mode == "full"
    assert len(snap.tasks) == 5 and len(snap.annotations) == 6
    assert set(snap.annotations["annotator"]) == {"alice@tests.local", "bob@tests.local"}
    assert snap.annotations.set_index("annotation_id").loc[disputed, "labels"] == ["cards"]
    problems = snap.validation.groupby("problem")["task_id"].apply(set).to_dict()
    assert problems == {"disagreement": {ids["refund the fee"]}, "unknown_label": {ids["send money abroad"]},
                        "cancelled": {ids["pending transfer"]}, "empty_text": {ids[""]}}
    labeled = snap.labeled().set_index("task_id")
    assert labeled.loc[ids["my card is broken"], "label"] == "cards"
    assert labeled.loc[ids["my card is broken"], "n_annotators"] == 2

    again = sync_project(ls_client, store, project.id)
    assert again.mode == "incremental" and not again.created and again.snapshot.id == snap.id
    assert again.fetched_tasks == 0  # nothing moved: nothing downloaded

    ls_client.update_annotation(disputed, schema.result("billing"))
    new_task = ls_client.import_tasks(project.id, [{"data": {"text": "late addition"}}])
    changed = sync_project(ls_client, store, project.id)
    assert changed.mode == "incremental" and changed.created
    assert changed.fetched_tasks == 2  # exactly what moved: the edited task and the new one
    diff = diff_snapshots(snap, changed.snapshot)
    assert diff.summary()["annotations_changed"] == 1 and len(diff.tasks_added) == new_task
    full = sync_project(ls_client, store, project.id, full=True)
    assert full.snapshot.id == changed.snapshot.id  # incremental merge == full pull, byte for byte


def test_deleted_task_falls_back_to_full_sync(ls_client, project, tmp_path):
    ls_client.import_tasks(project.id, [{"data": {"text": f"t{i}"}} for i in range(3)])
    store = SnapshotStore(tmp_path)
    first = sync_project(ls_client, store, project.id).snapshot
    ls_client.request("DELETE", f"api/tasks/{int(first.tasks['task_id'].iloc[0])}/")
    result = sync_project(ls_client, store, project.id)
    assert result.mode == "full" and len(result.snapshot.tasks) == 2
    assert len(store.load(first.id).tasks) == 3  # the old snapshot is untouched: sync never deletes
