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
