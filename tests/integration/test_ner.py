"""A named-entity (spans) project against a real Label Studio: two annotators' spans synced into a snapshot
(consensus, "no entities", disagreement), an uncertainty push of span predictions that Label Studio serves
least certain first, and `studio import` of a CoNLL file."""

import json
import uuid

import numpy as np
import pytest

from studio import cli
from studio.importer import IMPORT_KEY
from studio.labeling import parse_labeling_config
from studio.pool import push_pool, score_pool
from studio.records import unlabeled_view
from studio.snapshot import SnapshotStore
from studio.spans import word_offsets
from studio.sync import sync_project
from tests.conftest import REPO

pytestmark = pytest.mark.labelstudio

NER_XML = (REPO / "labeling_configs" / "ner.xml").read_text()
CONLL = "Alice\tB-person\nSmith\tI-person\nflew\tO\nto\tO\nParis\tB-location\n\nNothing\tO\nhere\tO\n"


@pytest.fixture
def ner_project(ls_client):
    """A fresh NER project (labeling_configs/ner.xml) per test, beside the other tests' projects."""
    return ls_client.create_project(f"ner-{uuid.uuid4().hex[:8]}", NER_XML)


def spans(schema, *triples):
    """Label Studio result of (start, end, label, text) spans."""
    return schema.kind.result([{"start": s, "end": e, "label": lab, "text": t} for s, e, lab, t in triples])


def predictions_of(client, task_id: int) -> list[dict]:
    """A task's predictions in full (the export lists only their ids)."""
    return client.request("GET", "api/predictions/", params={"task": task_id})


def word_probs(schema, text, tags, *, top=0.9):
    """(W, T) probabilities: each word's tag (a name, "O" when missing) at `top` (a float, or word -> float)."""
    names = schema.kind.tag_names
    n_words = len(word_offsets(text))
    probs = np.full((n_words, len(names)), 0.0)
    for w in range(n_words):
        p = top.get(w, 0.9) if isinstance(top, dict) else top
        probs[w] = (1 - p) / (len(names) - 1)
        probs[w, names.index(tags.get(w, "O"))] = p
    return probs


def test_two_annotators_spans_sync_and_uncertainty_push(ls_client, ner_project, tmp_path):
    schema = parse_labeling_config(ner_project.label_config)
    run = uuid.uuid4().hex[:6]
    alice = ls_client.create_user(f"alice-ner-{run}@tests.local")
    bob = ls_client.create_user(f"bob-ner-{run}@tests.local")
    labeled_texts = ["Alice Smith flew to Paris", "Bob works at Acme", "nothing to see here"]
    pool_texts = ["Carol visited Berlin", "Dave bought a Pixel", "Eve met Frank in Oslo", "Gina reads Dune"]
    ls_client.import_tasks(ner_project.id, [{"data": {"text": t}} for t in labeled_texts + pool_texts])
    ids = {r["data"]["text"]: r["id"] for r in ls_client.export_tasks(ner_project.id)}
    disputed, agreed, empty = (ids[t] for t in labeled_texts)
    ls_client.create_annotation(disputed, spans(schema, (0, 11, "person", "Alice Smith"),
                                                (20, 25, "location", "Paris")), completed_by=alice)
    ls_client.create_annotation(disputed, spans(schema, (0, 11, "person", "Alice Smith")), completed_by=bob)
    both = spans(schema, (0, 3, "person", "Bob"), (13, 17, "corporation", "Acme"))
    ls_client.create_annotation(agreed, both, completed_by=alice)
    ls_client.create_annotation(agreed, both, completed_by=bob)
    ls_client.create_annotation(empty, [], completed_by=alice)

    snap = sync_project(ls_client, SnapshotStore(tmp_path), ner_project.id).snapshot
    assert len(snap.annotations) == 5 and set(snap.annotations["annotator_id"]) == {alice, bob}
    kept = snap.annotations[snap.annotations["task_id"] == disputed].set_index("annotator")["result"]
    assert {who: sorted((v["value"]["start"], v["value"]["end"], v["value"]["labels"][0]) for v in json.loads(r))
            for who, r in kept.items()} == {
        f"alice-ner-{run}@tests.local": [(0, 11, "person"), (20, 25, "location")],
        f"bob-ner-{run}@tests.local": [(0, 11, "person")]}
    labeled = snap.labeled().set_index("task_id")
    assert "spans" in labeled.columns and set(labeled.index) == {disputed, agreed, empty}
    # Consensus: the spans both annotators marked; Paris (alice only) is a tie of two and is not kept.
    assert [(s["start"], s["end"], s["label"], s["text"]) for s in labeled.loc[disputed, "spans"]] == [
        (0, 11, "person", "Alice Smith")]
    assert [(s["start"], s["end"], s["label"]) for s in labeled.loc[agreed, "spans"]] == [
        (0, 3, "person"), (13, 17, "corporation")]
    assert list(labeled.loc[empty, "spans"]) == [] and labeled.loc[empty, "n_annotators"] == 1
    assert labeled.loc[agreed, "agreement"] == 1.0 and labeled.loc[disputed, "agreement"] < 1.0
    problems = snap.validation.groupby("problem")["task_id"].apply(set).to_dict()
    assert problems == {"disagreement": {disputed}}

    # Span push: hand-made per-word tag probabilities, "Eve met Frank in Oslo" the least certain (one word at
    # 0.4 against 0.3 for the runner-up: margin ~0.1, the others >= 0.5).
    pool = unlabeled_view(snap.tasks, snap.annotations)
    assert set(pool["text"]) == set(pool_texts)
    tags = {"Carol visited Berlin": {0: "B-person", 2: "B-location"},
            "Dave bought a Pixel": {0: "B-person", 3: "B-product"},
            "Eve met Frank in Oslo": {0: "B-person", 2: "B-person", 4: "B-location"},
            "Gina reads Dune": {0: "B-person", 2: "B-creative-work"}}
    tops = {"Carol visited Berlin": 0.8, "Dave bought a Pixel": 0.9, "Gina reads Dune": 0.7}
    output = []
    for text in pool["text"]:
        if text == "Eve met Frank in Oslo":
            probs = word_probs(schema, text, tags[text], top={4: 0.4})
            probs[4, schema.kind.tag_names.index("B-corporation")] = 0.3  # Oslo: location or corporation?
            probs[4] /= probs[4].sum()
        else:
            probs = word_probs(schema, text, tags[text], top=tops[text])
        assert probs.shape == (len(word_offsets(text)), len(schema.kind.tag_names))
        output.append(probs)
    scored = score_pool(pool, output, schema.kind, strategy="margin", n=3, model_version="run-ner-test")
    least = ids["Eve met Frank in Oslo"]
    assert scored.batch["task_id"].iloc[0] == least
    # threshold 0: every task's spans are pre-selected, so each result can be checked (the policy itself:
    # tests/unit/test_queue_records.py and tests/integration/test_active_queue.py)
    assert push_pool(ls_client, ner_project.id, scored, schema, threshold=0.0)["pushed"] == len(pool_texts)
    assert ls_client.model_versions(ner_project.id) == ["run-ner-test"]

    pushed = {ids[text]: predictions_of(ls_client, ids[text]) for text in pool_texts}
    scores = {}
    for text in pool_texts:
        predictions = pushed[ids[text]]
        assert len(predictions) == 1, text
        prediction = predictions[0]
        assert prediction["model_version"] == "run-ner-test"
        items = prediction["result"]
        assert items and all(i["type"] == "labels" and i["from_name"] == "label" and i["to_name"] == "text"
                             for i in items), text
        for item in items:
            value = item["value"]
            assert text[value["start"]:value["end"]] == value["text"] and len(value["labels"]) == 1
            assert 0.0 < item["score"] <= 1.0  # per-span score: its weakest word's probability
        assert [(i["value"]["text"], i["value"]["labels"][0]) for i in items] == [
            (text[a:b], tag[2:]) for w, tag in sorted(tags[text].items()) for a, b in [word_offsets(text)[w]]]
        scores[ids[text]] = float(prediction["score"])
    # Oslo's word, normalised: location 0.4 / 1.25 = 0.32, corporation 0.3 / 1.25 = 0.24 -> margin 0.08.
    oslo = next(i for i in pushed[least][0]["result"] if i["value"]["text"] == "Oslo")
    assert oslo["score"] == pytest.approx(0.32)
    # the task's confidence: its least certain word's margin; its score: its place in the queue, first
    assert scored.pool.set_index("task_id").loc[least, "confidence"] == pytest.approx(0.08)
    assert scores[least] == 0.0 and min(scores, key=scores.get) == least

    served = ls_client.next_task(ner_project.id)
    assert served["id"] == least
    assert served["predictions"][0]["model_version"] == "run-ner-test"
    info = ls_client.request("GET", f"api/projects/{ner_project.id}")
    assert info["sampling"] == "Uncertainty sampling" and info["model_version"] == "run-ner-test"


def _config_file(tmp_path, labelstudio, project_id) -> str:
    url, token, _ = labelstudio
    path = tmp_path / "studio.toml"
    path.write_text(f'[labelstudio]\nurl = "{url}"\ntoken = "{token}"\nproject_id = {project_id}\n\n'
                    f'[paths]\nstate_dir = "{tmp_path / "state"}"\n\n[demo]\nenabled = false\n', encoding="utf-8")
    return str(path)


def test_studio_import_conll(ls_client, ner_project, labelstudio, tmp_path, capsys):
    config = _config_file(tmp_path, labelstudio, ner_project.id)
    (tmp_path / "broken.conll").write_text(CONLL + "\nOslo\n", encoding="utf-8")
    assert cli.main(["--config", config, "import", str(tmp_path / "broken.conll")]) == 2
    assert "broken.conll, line 10: 'Oslo' has one field" in capsys.readouterr().err
    (tmp_path / "caps.conll").write_text("Bob\tB-PER\n", encoding="utf-8")
    assert cli.main(["--config", config, "import", str(tmp_path / "caps.conll")]) == 2
    assert "Labels not in the labeling config: PER." in capsys.readouterr().err
    assert ls_client.project_task_count(ner_project.id) == 0  # nothing of a refused file arrives

    (tmp_path / "data.conll").write_text(CONLL, encoding="utf-8")
    assert cli.main(["--config", config, "import", str(tmp_path / "data.conll")]) == 0
    assert "2 came with annotations from column 'spans'" in capsys.readouterr().out
    (tmp_path / "drafts.bio").write_text("Carol\tB-person\nin\tO\nOslo\tB-location\n", encoding="utf-8")
    assert cli.main(["--config", config, "import", str(tmp_path / "drafts.bio"), "--labels-as", "predictions"]) == 0
    (tmp_path / "plain.iob").write_text("Zed\tB-person\nleft\tO\n", encoding="utf-8")
    assert cli.main(["--config", config, "import", str(tmp_path / "plain.iob"), "--no-labels"]) == 0
    capsys.readouterr()

    records = {r["data"]["text"]: r for r in ls_client.export_tasks(ner_project.id)}
    assert set(records) == {"Alice Smith flew to Paris", "Nothing here", "Carol in Oslo", "Zed left"}
    assert records["Zed left"]["annotations"] == [] and records["Zed left"]["predictions"] == []
    assert all(set(r["data"]) == {"text", IMPORT_KEY} for r in records.values())  # spans are labels, not data
    first = records["Alice Smith flew to Paris"]["annotations"]
    assert len(first) == 1 and sorted((i["value"]["start"], i["value"]["end"], i["value"]["text"],
                                       i["value"]["labels"][0]) for i in first[0]["result"]) == [
        (0, 11, "Alice Smith", "person"), (20, 25, "Paris", "location")]
    assert [a["result"] for a in records["Nothing here"]["annotations"]] == [[]]
    draft = records["Carol in Oslo"]
    assert draft["annotations"] == [] and len(draft["predictions"]) == 1
    (prediction,) = predictions_of(ls_client, draft["id"])
    assert prediction["model_version"] == "import-drafts"
    assert [i["value"]["text"] for i in prediction["result"]] == ["Carol", "Oslo"]
    snap = sync_project(ls_client, SnapshotStore(tmp_path / "snaps"), ner_project.id).snapshot
    labeled = snap.labeled().set_index("text")
    assert [s["text"] for s in labeled.loc["Alice Smith flew to Paris", "spans"]] == ["Alice Smith", "Paris"]
    assert list(labeled.loc["Nothing here", "spans"]) == []
    assert "Carol in Oslo" not in labeled.index and "Zed left" not in labeled.index
