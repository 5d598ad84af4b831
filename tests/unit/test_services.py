"""`studio up` keeps watching what it started: a Label Studio or ML backend that stops on its own is reported
once, with its exit code and its log, while the app goes on."""

import subprocess
import time
from types import SimpleNamespace

from studio.services import Running, stopped_services


def test_a_service_that_stops_on_its_own_is_reported_once(tmp_path):
    server = subprocess.Popen(["sh", "-c", "exit 3"])  # stands in for the embedded Label Studio
    backend = subprocess.Popen(["sh", "-c", "exit 1"])
    alive = subprocess.Popen(["sleep", "30"])
    ws = SimpleNamespace(state_dir=tmp_path, folder=lambda name: tmp_path / name)
    try:
        running = Running(project=None, app=alive, backend=backend, started_server=True, login=None,
                          server_pid=server.pid)
        deadline = time.monotonic() + 10
        gone: list = []
        while len(gone) < 2 and time.monotonic() < deadline:
            gone += stopped_services(ws, running)
            time.sleep(0.05)
        messages = dict(gone)
        assert set(messages) == {"Label Studio", "ML backend"}
        assert "exit code 3" in messages["Label Studio"] and "server.log" in messages["Label Studio"]
        assert "exit code 1" in messages["ML backend"] and "mlbackend.log" in messages["ML backend"]
        assert stopped_services(ws, running) == []  # said once, not every half second

        running = Running(project=None, app=alive, backend=alive, started_server=False, login=None)
        assert stopped_services(ws, running) == []  # nothing stopped; a reused server is not ours to watch
    finally:
        alive.kill()
        alive.wait()


def test_down_stops_what_a_detached_up_left_running(tmp_path):
    """`studio up --detach` notes the app and ML backend; `studio down` stops them (real child processes)."""
    import sys

    from studio.config import PathsConfig, StudioConfig
    from studio.services import record_detached, stop_detached
    from studio.workspace import Workspace

    ws = Workspace(StudioConfig(root=tmp_path, paths=PathsConfig(state_dir=str(tmp_path / "state"))))
    ws.state_dir.mkdir(parents=True, exist_ok=True)
    children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
                for _ in range(2)]
    record_detached(ws, Running(project=None, app=children[0], backend=children[1], started_server=False,
                                login=None))
    assert sorted(stop_detached(ws)) == ["ML backend", "app"]
    deadline = time.monotonic() + 10
    while any(c.poll() is None for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(c.returncode == -15 for c in children)  # SIGTERM
    assert stop_detached(ws) == []  # nothing noted any more: a second down is a no-op
