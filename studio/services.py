"""The studio's own server processes beside Label Studio: the Streamlit app and the ML backend.

Both are started as separate process groups with the same configuration (config file + STUDIO_* overrides)
and log into the state folder. `bring_up` is what `studio up` starts (Label Studio too, when embedded), and
`run_until_stopped` waits for Ctrl-C (or SIGTERM, or the app exiting) and then stops it all (`shut_down`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.config import PROJECT_ENV
from studio.errors import StudioError
from studio.types import ProgressFn
from studio.workspace import Workspace


def app_command(ws: Workspace) -> list[str]:
    app = Path(__file__).parent / "app" / "main.py"
    return [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", ws.cfg.app.host,
            "--server.port", str(ws.cfg.app.port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "minimal"]  # no "Deploy" button: this app runs beside a local Label Studio


def _child_env(ws: Workspace) -> dict[str, str]:
    """The environment for the app and backend processes: same config file, same overrides, offline, and the
    project `studio up` was asked for as the one the app opens with (the backend serves every project)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", PROJECT_ENV: ws.key}
    if ws.cfg.source is not None and ws.cfg.source.exists():
        env["STUDIO_CONFIG"] = str(ws.cfg.source)
    return env


def start_app(ws: Workspace) -> subprocess.Popen:
    log = open(ws.folder("app") / "app.log", "ab")
    return subprocess.Popen(app_command(ws), env=_child_env(ws), stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, cwd=ws.cfg.root)


def start_mlbackend(ws: Workspace) -> subprocess.Popen:
    log = open(ws.folder("mlbackend") / "mlbackend.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "studio.cli", "mlbackend"], env=_child_env(ws), stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                            cwd=ws.cfg.root)


@dataclass
class Running:
    """What bring_up started: the workspace's provisioned project; the app and ML backend processes (None when not
    started); started_server: this call started the embedded Label Studio (so shut_down stops it); login: its user
    name; projects: every project provisioned, as (ProjectConfig, ProjectInfo), in configuration order."""

    project: Any
    app: subprocess.Popen | None
    backend: subprocess.Popen | None
    started_server: bool
    login: str | None
    server_pid: int | None = None  # the embedded Label Studio this call started (our child), else None
    projects: list[tuple[Any, Any]] = field(default_factory=list)


def port_in_use(host: str, port: int) -> bool:
    """Whether a server could not listen on host:port now (someone listens there). Tested by binding, as the
    server will: a connection attempt would take a listener whose backlog is full for a free port."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed server's TIME_WAIT is no obstacle
        try:
            sock.bind((host, int(port)))
        except OSError:
            return True
    return False


def _still_in_use(host: str, port: int, grace_s: float = 3.0) -> bool:
    """In use now and still after a short grace: a port a just-stopped server held (`studio down` then `studio up`)
    is released a moment after its process has exited."""
    deadline = time.monotonic() + grace_s
    while port_in_use(host, port):
        if time.monotonic() > deadline:
            return True
        time.sleep(0.1)
    return False


def check_ports(ws: Workspace, *, app: bool) -> None:
    """Before anything starts: each port `studio up` will listen on is free (Label Studio's may be Label Studio
    itself, which is reused), so a taken port is an error naming it, not a half-started studio."""
    from studio.errors import ConfigError
    from studio.labelstudio.server import is_healthy

    ls = ws.cfg.labelstudio
    wanted = []
    if ls.embedded and not is_healthy(ls.base_url):
        wanted.append(("Label Studio", "labelstudio", ls.host, ls.port))
    if ws.cfg.mlbackend.enabled:
        wanted.append(("the ML backend", "mlbackend", ws.cfg.mlbackend.host, ws.cfg.mlbackend.port))
    if app:
        wanted.append(("the app", "app", ws.cfg.app.host, ws.cfg.app.port))
    for name, section, host, port in wanted:
        if _still_in_use(host, port):
            raise ConfigError(f"Port {port} on {host}, where {name} should listen ([{section}] port), is taken by "
                              "another program.",
                              hint=f"stop that program (`studio down` stops a studio left running by `studio up "
                                   f"--detach`), or set [{section}] port in studio.toml (or STUDIO_{section.upper()}"
                                   "_PORT) to a free port")


def bring_up(ws: Workspace, *, app: bool = True, progress: ProgressFn | None = None) -> Running:
    """Start the embedded Label Studio (or reuse a running one), provision every configured project with its demo
    data, start the ML backend when enabled and connect it to each project, and start the app. Prints what it
    does, for `studio up`. A project other than the workspace's own that cannot be provisioned is reported and
    left out; the workspace's own project failing is an error."""
    from studio.labelstudio.server import (credentials_path, ensure_credentials, start_server, wait_healthy)
    from studio.mlbackend import backend_credentials, connect
    from studio.provision import provision

    ls = ws.cfg.labelstudio
    check_ports(ws, app=app)
    started_pid = None
    if ls.embedded:
        first = not credentials_path(ws.state_dir).exists()
        engine = "SQLite" if ls.database == "sqlite" else "PostgreSQL"
        print(f"Starting Label Studio on {ls.base_url} ({engine}, data in {ws.state_dir / 'labelstudio'}) ..."
              + (" first start runs migrations, about a minute." if first else ""), flush=True)
        _, started_pid = start_server(ws.state_dir, ls)
        if started_pid is None:
            print("Label Studio is already running; reusing it.")
    ws.client.check()
    provisioned = []
    for key, spec in ws.cfg.projects.items():
        project_ws = ws.sibling(key)
        try:
            result = provision(project_ws, progress=progress)
        except StudioError as exc:
            if key == ws.key:
                raise
            print(f"warning: project '{spec.title}' ([{spec.section}]) was not provisioned: {exc}", flush=True)
            continue
        print(f"Project '{result.project.title}' (id {result.project.id}, key {key})"
              + (" created" if result.created else " found") + (f", {result.imported} demo tasks imported." if
                                                                 result.imported else "."), flush=True)
        provisioned.append((project_ws, result))
    backend = None
    if ws.cfg.mlbackend.enabled:
        secret = backend_credentials(ws.state_dir)  # before the process starts: both read the one file
        backend = start_mlbackend(ws)
        wait_healthy(ws.cfg.mlbackend.url, timeout=60, process=backend, name="The ML backend",
                     log_file=ws.folder("mlbackend") / "mlbackend.log", auth=secret.auth)
        for project_ws, result in provisioned:
            connect(project_ws, result.project.id, ws.cfg.mlbackend.url)
    login = ensure_credentials(ws.state_dir, ls)[0].username if ls.embedded else None
    own = next(result.project for project_ws, result in provisioned if project_ws.key == ws.key)
    return Running(project=own, app=start_app(ws) if app else None, backend=backend,
                   started_server=started_pid is not None, login=login, server_pid=started_pid,
                   projects=[(project_ws.spec, result.project) for project_ws, result in provisioned])


def shut_down(ws: Workspace, running: Running) -> None:
    """Stop what bring_up started: the app, the ML backend and (if this run started it) Label Studio."""
    from studio.labelstudio.server import stop_server

    for child in (running.app, running.backend):
        if child is not None and child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
            child.wait(timeout=20)
    if running.started_server:
        stop_server(ws.state_dir)


DETACHED = "detached.json"


def record_detached(ws: Workspace, running: Running) -> None:
    """`studio up --detach` returns with the app and the ML backend still running: note their process groups so
    `studio down` can stop them too (not only Label Studio)."""
    from studio.atomic import write_json_atomic

    pids = {name: child.pid for name, child in (("app", running.app), ("ML backend", running.backend))
            if child is not None}
    write_json_atomic(ws.state_dir / DETACHED, pids)


def stop_detached(ws: Workspace) -> list[str]:
    """Stop the app and ML backend a detached `studio up` left running; returns the names of those stopped."""
    import json

    file = ws.state_dir / DETACHED
    if not file.exists():
        return []
    stopped = []
    for name, pid in json.loads(file.read_text()).items():
        try:
            os.killpg(int(pid), signal.SIGTERM)  # each was started in its own session: its group is its pid
            stopped.append(name)
        except ProcessLookupError:
            continue  # ended already
        _wait_gone(int(pid))
    file.unlink()
    return stopped


def _group_running(group: int) -> bool:
    """Whether any process of process group `group` still runs. A zombie (exited, not yet reaped by its parent, e.g.
    the process that ran both `studio up --detach` and `studio down`) holds no port and does not count."""
    proc = Path("/proc")
    if not proc.is_dir():  # no /proc: ask the kernel (a zombie leader then counts as running until reaped)
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended meanwhile
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


def _wait_gone(group: int, timeout: float = 15.0) -> None:
    """Wait until a process group has exited (so its port is free for the next `studio up`); SIGKILL it when it
    does not within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_running(group):
            return
        time.sleep(0.2)
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _exited(pid: int) -> int | None:
    """The exit status of our child process `pid` if it has ended (reaping it), else None."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child (any more): already reaped
        return 0
    return os.waitstatus_to_exitcode(status) if done else None


def _how(code: int) -> str:
    """An exit status in words: a negative one is the signal that ended the process (-15: SIGTERM)."""
    return f"ended by signal {-code}" if code < 0 else f"exit code {code}"


def stopped_services(ws: Workspace, running: Running) -> list[tuple[str, str]]:
    """(name, message) for each of Label Studio (if this run started it) and the ML backend that has stopped on
    its own, with its exit code and its log: what `studio up` prints while the app keeps running."""
    gone = []
    if running.server_pid is not None:
        code = _exited(running.server_pid)
        if code is not None:
            running.server_pid = None
            gone.append(("Label Studio", f"Label Studio stopped ({_how(code)}); its log: "
                         f"{ws.state_dir / 'labelstudio' / 'server.log'}. The app keeps working on the stored "
                         "snapshots; to get Label Studio back, press Ctrl-C and run `make up` again."))
    if running.backend is not None and running.backend.poll() is not None:
        code, running.backend = running.backend.returncode, None
        gone.append(("ML backend", f"The ML backend stopped ({_how(code)}); its log: "
                     f"{ws.folder('mlbackend') / 'mlbackend.log'}. Label Studio gets no pre-annotations until "
                     "`make up` runs again."))
    return gone


def run_until_stopped(ws: Workspace, running: Running) -> int:
    """Wait until Ctrl-C, SIGTERM or the app process ending, saying so when Label Studio or the ML backend stops
    on its own meanwhile; then shut everything down. Returns 0 when stopped on request, else 1 (the app ended by
    itself, which is said with its exit code and log)."""
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stopping and (running.app is None or running.app.poll() is None):
            for _, message in stopped_services(ws, running):
                print(f"\nwarning: {message}", flush=True)
            time.sleep(0.5)
    except KeyboardInterrupt:
        stopping = True
    finally:
        if not stopping and running.app is not None and running.app.poll() is not None:
            print(f"\nerror: the app stopped by itself ({_how(running.app.returncode)}); its log: "
                  f"{ws.folder('app') / 'app.log'}.", file=sys.stderr, flush=True)
        print("\nStopping ...", flush=True)
        shut_down(ws, running)
    return 0 if stopping else 1
