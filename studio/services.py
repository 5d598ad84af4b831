"""The studio's own server processes beside Label Studio: the Streamlit app and the ML backend.

Both are started as separate process groups with the same configuration (config file + STUDIO_* overrides)
and log into the state folder; `studio up` stops them on Ctrl-C.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from studio.workspace import Workspace


def app_command(ws: Workspace) -> list[str]:
    app = Path(__file__).parent / "app" / "main.py"
    return [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", ws.cfg.app.host,
            "--server.port", str(ws.cfg.app.port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false"]


def _child_env(ws: Workspace) -> dict[str, str]:
    """The environment for the app and backend processes: same config file, same overrides, offline."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
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
