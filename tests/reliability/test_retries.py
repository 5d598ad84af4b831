"""Retries are safe (issue 17, section 1): an import killed midway and run again, or run twice, converges to one
task per row of the file; against the real Label Studio, with a real kill -9 of the importing process."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from studio import cli
from studio.importer import IMPORT_KEY
from tests.conftest import REPO

pytestmark = pytest.mark.labelstudio


def config_file(tmp_path, labelstudio, project_id: int) -> str:
    url, token, _ = labelstudio
    path = tmp_path / "studio.toml"
    path.write_text(f'[labelstudio]\nurl = "{url}"\ntoken = "{token}"\nproject_id = {project_id}\n\n'
                    f'[paths]\nstate_dir = "{tmp_path / "state"}"\n\n[demo]\nenabled = false\n', encoding="utf-8")
    return str(path)


def test_an_import_killed_midway_then_run_again_imports_every_row_once(ls_client, project, labelstudio, tmp_path,
                                                                       capsys):
    rows = [f"text number {i}" for i in range(150)] + ["the same text twice"] * 2
    pd.DataFrame({"text": rows}).to_csv(tmp_path / "rows.csv", index=False)
    config = config_file(tmp_path, labelstudio, project.id)
    child = subprocess.Popen([sys.executable, "-m", "studio.cli", "--config", config, "import",
                              str(tmp_path / "rows.csv"), "--batch-size", "5"], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while ls_client.project_task_count(project.id) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    landed = ls_client.project_task_count(project.id)
    assert 0 < landed < len(rows), "the kill came too late to test anything"

    assert cli.main(["--config", config, "import", str(tmp_path / "rows.csv")]) == 0
    out = capsys.readouterr().out
    assert f"{landed} of {len(rows)} rows are in the project already" in out
    assert ls_client.project_task_count(project.id) == len(rows)  # the file's own repeated row stays twice

    assert cli.main(["--config", config, "import", str(tmp_path / "rows.csv")]) == 0  # by mistake, again
    assert ls_client.project_task_count(project.id) == len(rows)
    keys = [t["data"][IMPORT_KEY] for t in ls_client.export_tasks(project.id)]
    assert len(set(keys)) == len(rows)


def test_a_batch_size_below_one_is_a_usage_error(tmp_path, labelstudio, project, capsys):
    config = config_file(tmp_path, labelstudio, project.id)
    pd.DataFrame({"text": ["a"]}).to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--config", config, "import", str(tmp_path / "one.csv"), "--batch-size", "0"])
    assert exit_info.value.code == 2 and "0 is not 1 or more" in capsys.readouterr().err
