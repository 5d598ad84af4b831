"""The embedded Label Studio server: credentials, start, health, stop.

Label Studio runs as its own process bound to 127.0.0.1 with its SQLite database under
`<state_dir>/labelstudio/`, or on PostgreSQL (`[labelstudio] database`, studio/labelstudio/postgres.py). On first
start the studio generates an admin password and an API token, stores them in `credentials.json` with mode
0600, and passes them to Label Studio through its documented environment variables. Secrets are never logged;
the console shows where the file is.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from studio.atomic import write_json_atomic
from studio.config import LabelStudioConfig
from studio.errors import ConfigError, LabelStudioUnreachable
from studio.labelstudio.postgres import database_env, stop_cluster


@dataclass(frozen=True)
class Credentials:
    url: str
    username: str
    password: str
    token: str


def server_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "labelstudio"


def credentials_path(state_dir: Path) -> Path:
    return server_dir(state_dir) / "credentials.json"


def load_credentials(state_dir: Path) -> Credentials | None:
    file = credentials_path(state_dir)
    if not file.exists():
        return None
    return Credentials(**json.loads(file.read_text(encoding="utf-8")))


def ensure_credentials(state_dir: Path, cfg: LabelStudioConfig) -> tuple[Credentials, bool]:
    """Return the embedded server's credentials, generating them (mode 0600) on first use."""
    existing = load_credentials(state_dir)
    if existing is not None:
        return existing, False
    creds = Credentials(url=cfg.base_url, username=cfg.username, password=secrets.token_urlsafe(12),
                        token=secrets.token_hex(20))
    file = credentials_path(state_dir)
    file.parent.mkdir(parents=True, exist_ok=True)
    # Created with 0600 from the start: the secret never exists in a world-readable file, even briefly; and
    # exclusive, so a second process starting at the same moment fails rather than replace the first's password.
    write_json_atomic(file, creds.__dict__, mode=0o600, exclusive=True)
    return creds, True


def is_healthy(url: str, *, timeout: float = 2.0, auth: tuple[str, str] | None = None) -> bool:
    """Whether `url`/health answers 200; auth: basic-auth (user, password), for the ML backend."""
    try:
        return httpx.get(f"{url}/health", timeout=timeout, auth=auth).status_code == 200
    except httpx.HTTPError:
        return False


def wait_healthy(url: str, *, timeout: float, process: subprocess.Popen | None = None,
                 log_file: Path | None = None, name: str = "Label Studio",
                 auth: tuple[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_healthy(url, auth=auth):
            return
        if process is not None and process.poll() is not None:
            tail = log_file.read_text(errors="replace")[-2000:] if log_file and log_file.exists() else ""
            raise LabelStudioUnreachable(f"{name} exited with code {process.returncode} while starting.\n"
                                         f"Last lines of its log ({log_file}):\n{tail}",
                                         hint="is the port taken? set [labelstudio] port / STUDIO_LABELSTUDIO_PORT")
        time.sleep(1.0)
    raise LabelStudioUnreachable(f"{name} did not become healthy at {url} within {timeout:.0f} s.",
                                 hint=f"see its log {log_file}; first start runs migrations (~1 min)")


def _label_studio_command(cfg: LabelStudioConfig) -> list[str]:
    exe = Path(sys.executable).parent / "label-studio"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "label_studio.server"]
    return [*base, "start", "--no-browser", "--internal-host", cfg.host, "--port", str(cfg.port)]


def server_env(state_dir: Path, creds: Credentials, database: dict[str, str] | None = None) -> dict[str, str]:
    """Label Studio's environment. database: the variables naming its database (studio.labelstudio.postgres's
    `database_env`); none given or inherited means its SQLite file under the state folder."""
    data_dir = server_dir(state_dir) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    inherited = {k: v for k, v in os.environ.items() if k != "DJANGO_DB" and not k.startswith("POSTGRE_")}
    return {
        **inherited,
        **(database or {"DJANGO_DB": "sqlite"}),
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": creds.username,
        "LABEL_STUDIO_PASSWORD": creds.password,
        "LABEL_STUDIO_USER_TOKEN": creds.token,
        # 1.23 disables legacy tokens for new organisations; the studio authenticates with one.
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        # The Data Manager lets annotators be given uncertain tasks first; keep telemetry off a closed network.
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "LATEST_VERSION_CHECK": "false",
        # The ML backend runs on 127.0.0.1 beside it; Label Studio's default banned subnets (127.0.0.0/8, ...)
        # would block it from calling it. The embedded server itself listens on loopback only.
        "USE_DEFAULT_BANNED_SUBNETS": "false",
        # Label Studio's own batched prediction import (off by default in 1.23). The legacy path re-validates
        # every prediction against the config one by one; the studio validates labels before it pushes
        # (studio.push.prediction_records). Measured on 10,000 predictions: see bench/push.py.
        "fflag_fix_back_4620_memory_efficient_predictions_import_08012025_short": "true",
    }


def start_server(state_dir: Path, cfg: LabelStudioConfig, *, wait: bool = True) -> tuple[Credentials, int | None]:
    """Start the embedded server unless one already answers on host:port. Returns (credentials, pid or None
    when an already-running server was reused)."""
    if not cfg.embedded:
        raise ConfigError(f"[labelstudio] url = {cfg.url!r} points at an external server; the studio does not "
                          "start that one.", hint="leave url empty to run the embedded server")
    creds, _ = ensure_credentials(Path(state_dir), cfg)
    if is_healthy(cfg.base_url):
        return creds, None
    database = database_env(Path(state_dir), cfg.database, cfg.database_url)
    folder = server_dir(state_dir)
    log_file = folder / "server.log"
    with open(log_file, "ab") as log:
        process = subprocess.Popen(_label_studio_command(cfg), env=server_env(Path(state_dir), creds, database),
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, cwd=folder, umask=0o077)  # its database: 0600
    (folder / "server.pid").write_text(str(process.pid))
    if wait:
        wait_healthy(cfg.base_url, timeout=cfg.start_timeout_s, process=process, log_file=log_file)
    return creds, process.pid


def stop_server(state_dir: Path, *, timeout: float = 20.0) -> bool:
    """Stop the embedded server started by `start_server` (its whole process group), then the studio's own
    PostgreSQL cluster if it runs one (also one left by a killed run). True if either was running."""
    stopped = _stop_label_studio(state_dir, timeout=timeout)
    return stop_cluster(state_dir) or stopped


def _stop_label_studio(state_dir: Path, *, timeout: float) -> bool:
    pid_file = server_dir(state_dir) / "server.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().strip() or 0)
    pid_file.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.3)
    os.killpg(pid, signal.SIGKILL)
    return True
