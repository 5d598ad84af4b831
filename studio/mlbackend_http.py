"""The ML backend's HTTP side: who may call it, what a request may look like and cost, and the server itself.

The backend can start a sync and a training run whose model is promoted, so it is not an open door. Label Studio
on this machine is the only caller it needs, so the server listens on loopback only ([mlbackend] host is refused
otherwise) and every request must

- name the backend's own host:port in `Host` (421 otherwise: a DNS-rebinding page sends its own name),
- carry no `Origin` but Label Studio's own (403: a web page's cross-origin request),
- authenticate with HTTP basic auth as the user and password of `<state>/mlbackend/credentials.json` (0600,
  generated once): `connect` registers the backend with Label Studio as auth_method = BASIC_AUTH, and Label
  Studio sends them on every call, /health included (label_studio/ml/api_connector.py, `_prepare_kwargs`); its
  webhooks send the same `Authorization` header from the webhook's `headers` (label_studio/webhooks/utils.py,
  `run_webhook_sync`). 401 otherwise; compared in constant time;
- as a POST, be `Content-Type: application/json` (415: an HTML form or a "simple" cross-origin fetch cannot send
  that type without a CORS preflight, which gets no CORS headers here) with a Content-Length of at most
  [mlbackend] max_body_mb (411 / 413, answered before the body is read);
- arrive whole, headers and body, within [mlbackend] read_timeout_s (408; a deadline on the whole request, not only
  on each read, so a client trickling one byte at a time cannot hold a thread either);
- hold a JSON object with the field types the endpoints read, and at most [mlbackend] max_tasks tasks per /predict
  (400 / 413, each with a JSON {"error": ...} message naming the field).

A refused request gets one warning line in the log (never the secret, never a traceback).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from studio.atomic import write_json_atomic
from studio.errors import ConfigError, StudioError

if TYPE_CHECKING:
    from studio.mlbackend import MLBackend

log = logging.getLogger("studio.mlbackend")
USERNAME = "label-studio"
DRAIN_S = 2.0  # after refusing a POST, how long the unread body is read and dropped, so the client sees the answer


@dataclass(frozen=True)
class BackendCredentials:
    """The basic-auth user and password Label Studio (and its webhooks) call the backend with."""

    username: str
    password: str = field(repr=False)  # secrets never reach a log

    @property
    def header(self) -> str:
        """The `Authorization` header value: "Basic <base64 of user:password>"."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"

    @property
    def auth(self) -> tuple[str, str]:
        return self.username, self.password

    def matches(self, header: str | None) -> bool:
        """Whether an `Authorization` header carries these credentials (constant-time in the secret)."""
        scheme, _, value = (header or "").strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, colon, password = decoded.partition(b":")
        same_user = hmac.compare_digest(user, self.username.encode())
        same_password = hmac.compare_digest(password, self.password.encode())
        return bool(colon) and same_user and same_password


def credentials_path(state_dir: Path) -> Path:
    return Path(state_dir) / "mlbackend" / "credentials.json"


def backend_credentials(state_dir: Path) -> BackendCredentials:
    """The backend's credentials, generated on first use into a 0600 file (created exclusively: when `studio up`
    and the backend process create it at the same moment, both end up with the one that won)."""
    file = credentials_path(state_dir)
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_json_atomic(file, {"username": USERNAME, "password": secrets.token_urlsafe(32)}, mode=0o600,
                              exclusive=True)
        except FileExistsError:
            pass  # another process wrote it first: use theirs
    try:
        if file.stat().st_uid == os.getuid() and file.stat().st_mode & 0o077:
            os.chmod(file, 0o600)  # e.g. restored from a backup with other permissions
        data = json.loads(file.read_text(encoding="utf-8"))
        return BackendCredentials(username=str(data["username"]), password=str(data["password"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"The ML backend's secret file {file} cannot be read ({exc.__class__.__name__}).",
                          hint=f"delete {file}: `studio up` writes a new one and registers it with Label Studio"
                          ) from None


class RequestRefused(StudioError):
    """A request the backend does not serve; `status` is the HTTP status it is answered with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json_type(value: Any) -> str:
    for kind, name in ((dict, "an object"), (list, "an array"), (str, "a string"), (bool, "a boolean"),
                       (int, "a number"), (float, "a number")):
        if isinstance(value, kind):
            return name
    return "null"


def check_payload(endpoint: str, payload: Any, *, max_tasks: int) -> dict[str, Any]:
    """The request body as the endpoints read it, or RequestRefused (400, 413 for too many tasks) naming the field.

    Label Studio sends: "project" as "<id>.<timestamp>" (or a webhook's project object), "tasks" a list of task
    objects each with a "data" object, "label_config" a string, a webhook's "action" a string and its "task" and
    "annotation" each an object (lists for ANNOTATIONS_CREATED: label_studio/webhooks/models.py, ACTIONS)."""
    def refuse(name: str, value: Any, expected: str) -> RequestRefused:
        return RequestRefused(400, f"/{endpoint}: '{name}' is {_json_type(value)}, expected {expected}.")

    if not isinstance(payload, dict):
        raise RequestRefused(400, f"/{endpoint}: the body is {_json_type(payload)}, expected a JSON object "
                                  '(e.g. {"tasks": [...]}).')
    project = payload.get("project")
    if isinstance(project, dict):
        project = project.get("id")
    if project is not None and (isinstance(project, bool) or not isinstance(project, (int, str))):
        raise refuse("project", payload["project"], 'a project id ("12.1767225600", 12 or {"id": 12})')
    for name in ("label_config", "action"):
        if payload.get(name) is not None and not isinstance(payload[name], str):
            raise refuse(name, payload[name], "a string")
    for name in ("task", "annotation"):
        if payload.get(name) is not None and not isinstance(payload[name], (dict, list)):
            raise refuse(name, payload[name], "an object (or a list of them)")
    tasks = payload.get("tasks")
    if tasks is None:
        return payload
    if not isinstance(tasks, list):
        raise refuse("tasks", tasks, "a list of task objects")
    if len(tasks) > max_tasks:
        raise RequestRefused(413, f"/{endpoint}: {len(tasks):,} tasks in one request; at most {max_tasks:,} "
                                  "([mlbackend] max_tasks). Ask for fewer at once, or push predictions for many "
                                  "tasks with `studio active --push`.")
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise refuse(f"tasks[{i}]", task, "a task object")
        if task.get("data") is not None and not isinstance(task["data"], dict):
            raise refuse(f"tasks[{i}].data", task["data"], "an object")
    return payload


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class BackendServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a listen backlog for bursts: the default of 5 reset clients when 20 came at once."""

    request_queue_size = 128
    daemon_threads = True
    allowed_hosts: frozenset[str] = frozenset()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is one log line, not socketserver's traceback on stderr."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            log.info("the connection from %s ended early (%s)", client_address[0], exc.__class__.__name__)
        else:
            log.error("a request from %s failed", client_address[0], exc_info=exc)


def make_server(backend: MLBackend, host: str, port: int, *,
                credentials: BackendCredentials | None = None) -> BackendServer:
    """The backend's HTTP server on host:port (port 0: a free one), not yet serving (call serve_forever).

    credentials: whom to let in (default: the state folder's, generated on first use; what `connect` registers).
    Limits come from the backend's [mlbackend] section, the one allowed Origin from [labelstudio] url."""
    cfg = backend.ws.cfg.mlbackend
    creds = credentials or backend_credentials(backend.ws.state_dir)
    label_studio = _origin(backend.ws.cfg.labelstudio.base_url)
    routes = {"/predict": backend.predict, "/setup": backend.setup, "/webhook": backend.webhook,
              "/train": backend.train}

    class Handler(BaseHTTPRequestHandler):
        timeout = cfg.read_timeout_s  # each read of the socket (StreamRequestHandler sets it)
        server_version = "studio-mlbackend"
        sys_version = ""
        _timed_out = False
        _body_read = 0  # bytes of the body read so far

        # -- the deadline on the whole request ----------------------------------------------------------------
        def setup(self) -> None:
            super().setup()
            # When it passes, the read side is shut: a blocked read returns at once, and the request is answered
            # 408 (or dropped when not even its first line came). Cancelled as soon as the request is read.
            self._watchdog = threading.Timer(cfg.read_timeout_s, self._too_slow)
            self._watchdog.daemon = True
            self._watchdog.start()

        def _too_slow(self) -> None:
            self._timed_out = True
            try:
                self.connection.shutdown(socket.SHUT_RD)
            except OSError:
                pass

        def finish(self) -> None:
            self._watchdog.cancel()
            super().finish()

        # -- answers ------------------------------------------------------------------------------------------
        def _reply(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            if self.request_version == "HTTP/0.9":  # answer with a status line, whatever the request looked like
                self.request_version = "HTTP/1.0"
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _refuse(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
            log.warning("refused %s %s from %s: %d %s", self.command, self.path, self.client_address[0], status,
                        message.splitlines()[0])
            self.close_connection = True
            self._reply(status, {"error": message}, headers)
            self._drain()

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """http.server's own refusals (a broken request line, headers too long, no such method) as JSON."""
            if self._timed_out:
                code, message = 408, f"the request did not arrive whole within {cfg.read_timeout_s:g} s"
            log.warning("refused a request from %s: %d %s", self.client_address[0], code, message or "")
            self.close_connection = True
            try:
                self._reply(code, {"error": message or self.responses.get(code, ("error",))[0]})
            except OSError:
                pass

        def _drain(self) -> None:
            """Read and drop what is left of a refused POST's body for at most DRAIN_S, so that the client, still
            sending, reads the answer instead of a reset connection. Nothing is kept."""
            try:
                left = int(self.headers.get("Content-Length") or 0) - self._body_read if self.command == "POST" else 0
            except ValueError:
                return
            deadline = time.monotonic() + DRAIN_S
            try:
                while left > 0 and not self._timed_out and (wait := deadline - time.monotonic()) > 0:
                    self.connection.settimeout(min(wait, 0.5))
                    chunk = self.rfile.read1(min(left, 1 << 16))
                    if not chunk:
                        break
                    left -= len(chunk)
            except OSError:
                pass

        # -- who may call -------------------------------------------------------------------------------------
        def _allowed(self) -> bool:
            if self._timed_out:  # the headers stopped coming: what arrived is not the whole request
                self._refuse(408, f"the request did not arrive whole within {cfg.read_timeout_s:g} s.")
                return False
            host = (self.headers.get("Host") or "").strip().lower()
            if not host:
                self._refuse(400, "no Host header.")
                return False
            if host not in self.server.allowed_hosts:
                self._refuse(421, f"Host {host!r} is not this backend ({', '.join(sorted(self.server.allowed_hosts))}"
                                  ").")
                return False
            origin = (self.headers.get("Origin") or "").strip().lower()
            if origin and origin != label_studio:
                self._refuse(403, f"Origin {origin!r} may not call the ML backend (only Label Studio, "
                                  f"{label_studio}).")
                return False
            if not creds.matches(self.headers.get("Authorization")):
                self._refuse(401, "authentication required: the ML backend's basic-auth user and password "
                                  "(registered with Label Studio by `studio up`).",
                             {"WWW-Authenticate": 'Basic realm="studio ML backend", charset="UTF-8"'})
                return False
            return True

        # -- the methods ----------------------------------------------------------------------------------------
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._watchdog.cancel()
            if not self._allowed():
                return
            if self.path.rstrip("/") in ("/health", ""):
                backend.calls.append("health")
                self._reply(200, backend.health())
            else:
                self._refuse(404, f"no route {self.path}")

        def do_POST(self) -> None:  # noqa: N802
            endpoint = self.path.split("?", 1)[0].rstrip("/")
            try:
                if not self._allowed():
                    return
                route = routes.get(endpoint)
                if route is None:
                    raise RequestRefused(404, f"no route {self.path}")
                payload = check_payload(endpoint.strip("/"), self._read_json(), max_tasks=cfg.max_tasks)
                backend.calls.append(endpoint.strip("/"))
                answer = route(payload)
            except RequestRefused as exc:
                self._refuse(exc.status, str(exc))
                return
            except StudioError as exc:
                self._refuse(400, str(exc))
                return
            except Exception:  # a bug: the caller gets a message, the log the traceback
                log.exception("%s failed", endpoint)
                self.close_connection = True
                self._reply(500, {"error": f"{endpoint} failed inside the ML backend; see its log"})
                return
            self._reply(200, answer)

        def _read_json(self) -> Any:
            ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if ctype != "application/json":
                raise RequestRefused(415, f"Content-Type {ctype or 'none'!r}: the ML backend reads "
                                          "application/json only.")
            if self.headers.get("Transfer-Encoding"):
                raise RequestRefused(411, "send the body with a Content-Length (chunked bodies are not read).")
            raw = self.headers.get("Content-Length")
            if raw is None:
                raise RequestRefused(411, "a POST needs a Content-Length.")
            try:
                length = int(raw)
            except ValueError:
                length = -1
            if length < 0:
                raise RequestRefused(400, f"Content-Length {raw!r} is not a byte count.")
            if length > cfg.max_body_bytes:
                raise RequestRefused(413, f"the body is {length / 2**20:,.1f} MB; at most {cfg.max_body_mb:g} MB "
                                          "([mlbackend] max_body_mb). Ask for fewer tasks at once.")
            body = self._read_body(length)
            self._watchdog.cancel()
            if not body:
                raise RequestRefused(400, 'the body is empty, expected a JSON object (e.g. {"tasks": [...]}).')
            try:
                return json.loads(body)
            except UnicodeDecodeError:
                raise RequestRefused(400, "the body is not UTF-8 text.") from None
            except json.JSONDecodeError as exc:
                raise RequestRefused(400, f"the body is not JSON: {exc}") from None
            except ValueError as exc:  # e.g. an integer of more than 4,300 digits
                raise RequestRefused(400, f"the body's JSON cannot be read: {str(exc)[:200]}") from None
            except RecursionError:
                raise RequestRefused(400, "the body's JSON is nested too deeply.") from None

        def _read_body(self, length: int) -> bytes:
            chunks, got = [], 0
            try:
                while got < length:
                    chunk = self.rfile.read1(min(length - got, 1 << 16))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    got += len(chunk)
                    self._body_read = got
            except TimeoutError:
                self._timed_out = True
            if got < length:
                if self._timed_out:
                    raise RequestRefused(408, f"the body did not arrive whole within {cfg.read_timeout_s:g} s "
                                              f"({got:,} of {length:,} bytes).")
                raise RequestRefused(400, f"the body ended after {got:,} of the {length:,} bytes Content-Length "
                                          "announced.")
            return b"".join(chunks)

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug(fmt, *args)

    server = BackendServer((host, port), Handler)
    bound = server.server_address[1]
    names = {host.lower(), "127.0.0.1", "localhost"} if host in ("127.0.0.1", "localhost") else {host.lower()}
    server.allowed_hosts = frozenset(f"{name}:{bound}" for name in names)
    return server
