"""`studio --project KEY` (before or after the command name, or STUDIO_PROJECT) and `studio projects`, with Label
Studio down: nothing here needs a server."""

import pytest

from studio import cli
from studio.labeling import parse_labeling_config
from studio.snapshot import SnapshotStore
from studio.workspace import Workspace
from tests.conftest import REPO, free_port


def _config(tmp_path) -> str:
    """Two projects; Label Studio is an external server on a port nobody listens on."""
    path = tmp_path / "studio.toml"
    path.write_text(
        f'[labelstudio]\nurl = "http://127.0.0.1:{free_port()}"\ntoken = "t"\ntimeout_s = 2\n'
        f'labeling_config = "{REPO / "labeling_configs" / "text_classification.xml"}"\n'
        '[paths]\nstate_dir = "state"\n'
        f'[projects.support]\ntitle = "Customer support answers"\n'
        f'labeling_config = "{REPO / "labeling_configs" / "sft.xml"}"\nproject_id = 7\n')
    return str(path)


@pytest.mark.parametrize("argv, expected", [
    (["snapshots"], None),
    (["--project", "support", "snapshots"], "support"),
    (["snapshots", "--project", "support"], "support"),
    (["--project", "intents", "snapshots", "--project", "support"], "support"),  # the later one counts
])
def test_the_project_option_goes_before_or_after_the_command(argv, expected):
    assert cli.build_parser().parse_args(argv).project == expected


def test_each_command_works_on_the_chosen_projects_state(tmp_path, capsys, monkeypatch):
    config = _config(tmp_path)
    from studio.config import load_config

    ws = Workspace(load_config(config, environ={}))  # the primary project's: one snapshot
    xml = (REPO / "labeling_configs" / "text_classification.xml").read_text()
    schema = parse_labeling_config(xml.replace("</Choices>", '<Choice value="a"/></Choices>'))
    from studio.records import annotations_frame, tasks_frame

    records = [{"id": 1, "data": {"text": "hi"}, "annotations": []}]
    snapshot, _ = SnapshotStore(ws.folder("snapshots")).write(
        tasks_frame(records, schema), annotations_frame(records, schema, {}), schema=schema, project_id=1,
        project_title="Banking77 intents", source_url="http://x")
    assert cli.main(["--config", config, "snapshots"]) == 0
    assert snapshot.id in capsys.readouterr().out
    assert cli.main(["--config", config, "snapshots", "--project", "support"]) == 0
    assert capsys.readouterr().out.strip() == "No snapshots yet: run studio sync."
    monkeypatch.setenv("STUDIO_PROJECT", "support")
    assert cli.main(["--config", config, "snapshots"]) == 0
    assert capsys.readouterr().out.strip() == "No snapshots yet: run studio sync."


def test_an_unknown_project_is_a_clear_error_listing_the_known_ones(tmp_path, capsys):
    assert cli.main(["--config", _config(tmp_path), "--project", "suport", "snapshots"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --project names no configured project 'suport'. Did you mean 'support'?")
    assert "Configured projects: intents, support." in err and "Traceback" not in err


def test_projects_lists_the_configured_ones_when_label_studio_is_down(tmp_path, capsys):
    assert cli.main(["--config", _config(tmp_path), "--project", "support", "projects"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = lines[0].split()
    assert header == ["key", "title", "id", "tasks", "kind"]
    intents = next(line for line in lines if " intents " in f" {line} ")
    support = next(line for line in lines if " support " in f" {line} ")
    assert "Banking77 intents" in intents and intents.split()[-1] == "single_label" and "*" not in intents
    assert "Customer support answers" in support and support.split()[-1] == "generation"
    assert support.lstrip().startswith("*") and " 7 " in support  # the chosen one; its configured id
    assert "Ids and task counts are not known" in out
