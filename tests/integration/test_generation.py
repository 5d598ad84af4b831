"""An instruction -> response project against a real Label Studio: import of answers, drafts and chats; every
expert's answer synced (validation: an empty answer, a 100,000-character prompt); drafts pushed as editable
TextArea predictions and the experts' edits measured; and the pairwise evaluation project round trip."""

import json
import uuid

import pandas as pd
import pytest

from studio import cli
from studio.drafts import DraftBatch
from studio.labeling import parse_labeling_config
from studio.workspace import Workspace
from studio.config import load_config
from tests.conftest import REPO

pytestmark = pytest.mark.labelstudio

SFT_XML = (REPO / "labeling_configs" / "sft.xml").read_text()


@pytest.fixture
def sft_project(ls_client):
    return ls_client.create_project(f"sft-{uuid.uuid4().hex[:8]}", SFT_XML)


def _workspace(tmp_path, labelstudio, project_id) -> tuple[str, Workspace]:
    url, token, _ = labelstudio
    path = tmp_path / "studio.toml"
    path.write_text(f'[labelstudio]\nurl = "{url}"\ntoken = "{token}"\nproject_id = {project_id}\n\n'
                    f'[paths]\nstate_dir = "{tmp_path / "state"}"\n\n[demo]\nenabled = false\n', encoding="utf-8")
    return str(path), Workspace(load_config(path))


def test_import_sync_drafts_and_edits(ls_client, sft_project, labelstudio, tmp_path, capsys):
    config, ws = _workspace(tmp_path, labelstudio, sft_project.id)
    answered = pd.DataFrame({"instruction": ["How do I reset my password?", "Where is my parcel?",
                                             "x" * 100_000],
                             "output": ["Open Settings, then Security.", "Track it on the Orders page.", "Too long."],
                             "intent": ["password", "delivery", "other"]})
    answered.to_csv(tmp_path / "answered.csv", index=False)
    chats = [{"messages": [{"role": "user", "content": "Can I change my order?"},
                           {"role": "assistant", "content": "Yes, within an hour, on the Orders page."}]},
             {"messages": [{"role": "user", "content": "Do you ship to Norway?"}]}]
    (tmp_path / "drafts.jsonl").write_text("\n".join(json.dumps(c) for c in chats), encoding="utf-8")
    (tmp_path / "multi.jsonl").write_text(json.dumps({"messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}),
        encoding="utf-8")
    assert cli.main(["--config", config, "import", str(tmp_path / "multi.jsonl")]) == 2
    assert "not one exchange" in capsys.readouterr().err
    assert cli.main(["--config", config, "import", str(tmp_path / "answered.csv")]) == 0
    assert "3 came with annotations from column 'output'" in capsys.readouterr().out
    assert cli.main(["--config", config, "import", str(tmp_path / "drafts.jsonl"), "--labels-as", "predictions"]) == 0
    capsys.readouterr()

    records = {r["data"]["prompt"][:40]: r for r in ls_client.export_tasks(sft_project.id)}
    assert records["How do I reset my password?"]["data"]["intent"] == "password"
    schema = parse_labeling_config(sft_project.label_config)
    password = records["How do I reset my password?"]["id"]
    second = ls_client.create_user(f"expert-{uuid.uuid4().hex[:6]}@tests.local")
    ls_client.create_annotation(password, schema.kind.result("Use the reset link we e-mail you."),
                                completed_by=second)
    ls_client.create_annotation(records["Do you ship to Norway?"]["id"], schema.kind.result("   "),
                                completed_by=second)

    snapshot = ws.sync().snapshot
    answers = snapshot.responses()
    assert len(answers) == 5 and (answers["task_id"] == password).sum() == 2
    labeled = snapshot.labeled().set_index("task_id")
    assert labeled.loc[password, "response"] == "Use the reset link we e-mail you."   # the most recent
    problems = set(snapshot.validation["problem"])
    assert {"empty_response", "prompt_too_long", "disagreement"} <= problems
    pool = ws.active  # drafts: no model here, so a batch is built by hand and pushed as a run would push it
    unanswered = [records["Can I change my order?"]["id"]]
    batch = DraftBatch(pd.DataFrame({"task_id": unanswered, "text": ["Can I change my order?"],
                                     "draft": ["Yes: open Orders and press Change."], "confidence": [0.4],
                                     "rank": [0]}), model_version="run-drafts-test", strategy="diverse")
    assert pool.push_drafts(batch) == {"pushed": 1}
    predictions = ls_client.request("GET", "api/predictions/", params={"task": unanswered[0]})
    mine = [p for p in predictions if p["model_version"] == "run-drafts-test"]
    assert mine[0]["result"][0]["type"] == "textarea"
    assert mine[0]["result"][0]["value"]["text"] == ["Yes: open Orders and press Change."]
    project = ls_client.request("GET", f"api/projects/{sft_project.id}")
    assert project["model_version"] == "run-drafts-test"

    ls_client.create_annotation(unanswered[0], schema.kind.result("Yes: open Orders and press Change within an hour."),
                                completed_by=second)
    edits, stats = ws.active.draft_edits(ws.sync().snapshot)
    assert len(edits) == 1 and 0 < edits.iloc[0]["distance"] < 0.5 and not edits.iloc[0]["unchanged"]
    assert stats.set_index("model_version").loc["run-drafts-test", "answered"] == 1


def test_pairwise_evaluation_round_trip(ls_client, sft_project, labelstudio, tmp_path, monkeypatch):
    from studio.evaluation import CHOICES

    _, ws = _workspace(tmp_path, labelstudio, sft_project.id)
    examples = pd.DataFrame({"prompt": [f"question {i}" for i in range(6)],
                             "reference": ["ref"] * 6,
                             "base": [f"a vague answer {i}" for i in range(6)],
                             "fine_tuned": [f"the precise answer {i}" for i in range(6)]})
    monkeypatch.setattr(type(ws.evaluation), "examples", lambda self, run_id: examples)
    comparison = ws.evaluation.compare("run-eval-test", "base")
    assert comparison.project_id and len(comparison.items) == 6
    tasks = ls_client.export_tasks(comparison.project_id)
    assert all("run-eval-test" not in json.dumps(t["data"]) for t in tasks)   # the judges never see who wrote what
    pairwise = parse_labeling_config(ls_client.get_project(comparison.project_id).label_config)
    side = {row["item"]: row for row in comparison.items}
    judge = ls_client.create_user(f"judge-{uuid.uuid4().hex[:6]}@tests.local")
    shown = {v: k for k, v in CHOICES.items()}
    for i, task in enumerate(tasks):
        left = side[task["data"]["item"]]["left"]
        choice = "tie" if i == 5 else ("A" if left == "run-eval-test" else "B")  # the run wins 5, one tie
        ls_client.create_annotation(task["id"], pairwise.result(shown[choice]), completed_by=judge)
    results = ws.evaluation.results(comparison.id)
    assert results.wins == {"run-eval-test": 5, "base": 0} and results.ties == 1
    assert results.win_rate["run-eval-test"] == pytest.approx(5.5 / 6)
    assert results.tasks_judged == 6 and results.agreement is None


def test_the_shipped_support_demo_project_provisions(labelstudio, ls_client, tmp_path):
    """studio.toml's [projects.support] as shipped (only the server, state and title changed): 540 requests, the
    first 150 answered by the demo's annotator with the file's answers."""
    import tomllib

    from studio.config import StudioConfig
    from studio.provision import provision

    url, token, _ = labelstudio
    shipped = tomllib.loads((REPO / "studio.toml").read_text(encoding="utf-8"))["projects"]["support"]
    shipped["title"] = f"support-demo-{uuid.uuid4().hex[:6]}"
    cfg = StudioConfig.from_dict({"labelstudio": {"url": url, "token": token, "project_title": f"p-{uuid.uuid4()}"},
                                  "paths": {"state_dir": str(tmp_path / "state")}, "demo": {"enabled": False},
                                  "projects": {"support": shipped}}, root=REPO)
    ws = Workspace(cfg, "support")
    result = provision(ws)
    assert result.created and result.imported == 540
    assert provision(ws).imported == 0                      # a second `up` imports nothing
    snapshot = ws.sync().snapshot
    assert snapshot.schema.kind.name == "generation" and len(snapshot.tasks) == 540
    labeled = snapshot.labeled()
    demo = pd.read_csv(REPO / "data" / "demo" / "customer_support_demo.csv")
    assert len(labeled) == 150 and set(snapshot.annotations["annotator"]) == {"bitext-original@demo.local"}
    by_prompt = dict(zip(demo["prompt"], demo["response"]))
    assert all(by_prompt[p] == r for p, r in zip(labeled["text"], labeled["response"]))
    assert "intent" in json.loads(snapshot.tasks["data"].iloc[0])   # the intent rides along for per-group figures
