"""Bad input gets a message, never a traceback (issue 17, section 4): the configuration, labeling configs and
diffs across projects. Through the CLI, as a person meets them (exit code 2, one `error:` line)."""

import pytest

from studio import cli
from studio.errors import DataError

CASES = {
    "port = true": ("[labelstudio]\nport = true\n", "port = True is bool, expected a whole number"),
    "port = 8080.5": ("[labelstudio]\nport = 8080.5\n", "port = 8080.5 is float, expected a whole number"),
    "project_title = 5": ("[labelstudio]\nproject_title = 5\n", "project_title = 5 is int, expected text"),
    "a section that is a scalar": ("labelstudio = 5\n", "[labelstudio] must be a table"),
    "state_dir = 5": ("[paths]\nstate_dir = 5\n", "state_dir = 5 is int, expected text"),
    'epochs = "1e400"': ('[train]\nepochs = "1e400"\n', "epochs = '1e400' is not a valid float"),
    "a list for a number": ("[quality]\nfolds = [1, 2]\n", "folds = [1, 2] is list, expected a whole number"),
    "a title over 50 characters": ('[labelstudio]\nproject_title = "' + "x" * 51 + '"\n', "at most 50 characters"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_wrong_config_value_is_named(case, tmp_path, capsys):
    text, message = CASES[case]
    config = tmp_path / "studio.toml"
    config.write_text(text)
    assert cli.main(["--config", str(config), "projects"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_a_config_file_that_is_not_utf8_is_named(tmp_path, capsys):
    config = tmp_path / "studio.toml"
    config.write_bytes(b'[labelstudio]\nproject_title = "caf\xe9"\n')
    assert cli.main(["--config", str(config), "projects"]) == 2
    assert "is not UTF-8 text" in capsys.readouterr().err


def test_a_labeling_config_that_is_not_utf8_is_named(tmp_path):
    from studio.errors import LabelingConfigError
    from studio.labeling import load_labeling_config

    xml = tmp_path / "config.xml"
    xml.write_bytes('<View><Text name="t" value="$text"/><Choices name="c" toName="t"><Choice value="caf\xe9"/>'
                    "</Choices></View>".encode("latin-1"))
    with pytest.raises(LabelingConfigError, match="is not UTF-8 text"):
        load_labeling_config(xml)


def test_a_diff_of_two_projects_snapshots_is_refused(tmp_path):
    from studio.labeling import parse_labeling_config
    from studio.records import annotations_frame, tasks_frame
    from studio.snapshot import SnapshotStore, diff_snapshots

    xml = ('<View><Text name="text" value="$text"/><Choices name="c" toName="text"><Choice value="a"/>'
           '<Choice value="b"/></Choices></View>')
    schema, store = parse_labeling_config(xml), SnapshotStore(tmp_path)
    recs = [{"id": 1, "data": {"text": "x"}, "annotations": []}]
    snaps = [store.write(tasks_frame(recs, schema), annotations_frame(recs, schema, {}), schema=schema,
                         project_id=pid, project_title=f"p{pid}", source_url="http://x")[0] for pid in (1, 2)]
    with pytest.raises(DataError, match="different projects"):
        diff_snapshots(*snaps)


def test_curating_one_class_warns_that_nothing_can_be_learned(tmp_path):
    from studio.config import PathsConfig, StudioConfig
    from studio.labeling import parse_labeling_config
    from studio.records import annotations_frame, tasks_frame
    from studio.snapshot import SnapshotStore
    from studio.workspace import Workspace

    xml = ('<View><Text name="text" value="$text"/><Choices name="c" toName="text"><Choice value="a"/>'
           '<Choice value="b"/></Choices></View>')
    schema = parse_labeling_config(xml)
    recs = [{"id": i + 1, "data": {"text": f"text {i}"}, "annotations": [
        {"id": 10 + i, "completed_by": 1, "was_cancelled": False, "lead_time": 1.0,
         "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
         "result": [{"from_name": "c", "to_name": "text", "type": "choices", "value": {"choices": ["a"]}}]}]}
        for i in range(6)]
    snap, _ = SnapshotStore(tmp_path / "s").write(tasks_frame(recs, schema), annotations_frame(recs, schema, {}),
                                                  schema=schema, project_id=1, project_title="p", source_url="x")
    ws = Workspace(StudioConfig(root=tmp_path, paths=PathsConfig(state_dir=str(tmp_path / "state"))))
    prepared = ws.curation.prepare(snap, export=False)
    assert prepared.split.warnings[0].startswith("Only 1 class(es) (a) have labels")


def test_studio_up_on_a_taken_port_names_it_and_starts_nothing(tmp_path, capsys):
    import socket

    from tests.conftest import free_port

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        config = tmp_path / "studio.toml"
        config.write_text(f"[labelstudio]\nport = {free_port()}\n[mlbackend]\nport = {free_port()}\n"
                          f"[app]\nport = {port}\n[paths]\nstate_dir = \"{tmp_path / 'state'}\"\n")
        assert cli.main(["--config", str(config), "up", "--detach"]) == 2
        err = capsys.readouterr().err
        assert f"Port {port} on 127.0.0.1, where the app should listen ([app] port), is taken" in err
        assert not (tmp_path / "state" / "labelstudio" / "server.pid").exists()  # nothing was started
    finally:
        busy.close()


@pytest.mark.parametrize("out, message", [("missing/folder/issues.csv", "does not exist"),
                                          ("issues.xlsx", "written as .parquet or .csv")])
def test_studio_quality_out_is_checked_before_the_work(tmp_path, monkeypatch, capsys, out, message):
    config = tmp_path / "studio.toml"
    config.write_text(f"[paths]\nstate_dir = \"{tmp_path / 'state'}\"\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--config", str(config), "quality", "--out", out]) == 2
    err = capsys.readouterr().err
    assert message in err and "Label Studio" not in err  # refused before anything was asked of Label Studio


def test_a_url_that_is_a_web_app_but_not_label_studio_is_named(tmp_path, capsys):
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = b"<html><body>some other web app</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = tmp_path / "studio.toml"
        config.write_text(f'[labelstudio]\nurl = "http://127.0.0.1:{server.server_port}"\ntoken = "t"\n'
                          f'[paths]\nstate_dir = "{tmp_path / "state"}"\n')
        assert cli.main(["--config", str(config), "sync"]) == 2
        err = capsys.readouterr().err
        assert "is it Label Studio?" in err and "Traceback" not in err
        from studio.errors import LabelStudioUnreachable
        from studio.labelstudio.client import LabelStudioClient

        with pytest.raises(LabelStudioUnreachable, match="answers, but not as Label Studio does"):
            LabelStudioClient(f"http://127.0.0.1:{server.server_port}", "t").check()
    finally:
        server.shutdown()
