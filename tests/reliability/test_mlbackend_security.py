"""The ML backend is no open door (issue 17, section 3): only Label Studio, authenticated, gets in; requests of the
wrong shape or size get a clear refusal; slow or many clients cannot pin it. Against the real server (in-process,
on a free port, over real sockets); the last tests against the real Label Studio."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from studio.config import StudioConfig
from studio.errors import ConfigError
from studio.mlbackend import MLBackend, ProjectBackend, connect, project_id_of
from studio.mlbackend_http import backend_credentials, credentials_path, make_server
from studio.workspace import Workspace
from tests.conftest import REPO, free_port

LS_ORIGIN = "http://127.0.0.1:8080"
XML = ('<View><Text name="text" value="$text"/><Choices name="label" toName="text"><Choice value="billing"/>'
       '<Choice value="cards"/><Choice value="transfers"/></Choices></View>')


@pytest.fixture
def served(tmp_path):
    """(backend, base url, credentials) of a backend served on a free port, short limits so tests stay quick; Label
    Studio (LS_ORIGIN) is not running: nothing here needs it."""
    cfg = StudioConfig.from_dict({
        "labelstudio": {"url": LS_ORIGIN, "token": "t", "timeout_s": 2, "project_id": 11},
        "paths": {"state_dir": str(tmp_path / "state")}, "demo": {"enabled": False},
        "mlbackend": {"max_body_mb": 1, "max_tasks": 50, "read_timeout_s": 1.5},
    }, root=REPO)
    backend = MLBackend(Workspace(cfg))
    server = make_server(backend, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield backend, f"http://127.0.0.1:{server.server_address[1]}", backend_credentials(backend.ws.state_dir)
    server.shutdown()
    server.server_close()


def raw(url: str, data: bytes, *, timeout: float = 10.0) -> tuple[int, dict, float]:
    """Send bytes as they are on a fresh connection; (status, JSON body, seconds until the answer)."""
    port = int(url.rsplit(":", 1)[1])
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(data)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body), time.monotonic() - start


def post(url: str, creds, path: str, body: bytes, *, ctype: str = "application/json", extra: str = "",
         length: int | None = None) -> bytes:
    """A POST as bytes, authenticated with creds (None: no Authorization header)."""
    port = url.rsplit(":", 1)[1]
    auth = f"Authorization: {creds.header}\r\n" if creds else ""
    size = len(body) if length is None else length
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Content-Type: {ctype}\r\n"
            f"Content-Length: {size}\r\n{extra}\r\n").encode() + body


# -- who may call ------------------------------------------------------------------------------------------------
def test_the_secret_is_generated_once_into_a_0600_file(tmp_path):
    first = backend_credentials(tmp_path)
    file = credentials_path(tmp_path)
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert backend_credentials(tmp_path) == first and len(first.password) >= 40
    assert first.password not in repr(first)  # secrets never reach a log
    os.chmod(file, 0o644)
    backend_credentials(tmp_path)
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    file.write_text("{not json")
    with pytest.raises(ConfigError, match="delete"):
        backend_credentials(tmp_path)


def test_a_request_without_the_secret_is_refused_with_401(served):
    backend, url, creds = served
    assert httpx.get(f"{url}/health").status_code == 401
    wrong = httpx.post(f"{url}/webhook", json={"action": "START_TRAINING", "project": {"id": 11}},
                       auth=(creds.username, "not-the-secret"))
    assert wrong.status_code == 401 and "authentication required" in wrong.json()["error"]
    assert wrong.headers["WWW-Authenticate"].startswith("Basic ")
    assert httpx.post(f"{url}/train", json={}, auth=("someone", creds.password)).status_code == 401
    garbled = httpx.get(f"{url}/health", headers={"Authorization": "Basic !!not-base64!!"})
    assert garbled.status_code == 401
    assert backend.calls == []  # nothing reached an endpoint: no sync, no training started
    ok = httpx.get(f"{url}/health", auth=creds.auth)
    assert ok.status_code == 200 and ok.json()["status"] == "UP"


def test_a_cross_site_request_is_refused(served):
    """A web page can POST text/plain to any port without a preflight, and a DNS-rebinding page sends its own Host;
    a browser sends its Origin. Each is refused, even with the right secret."""
    backend, url, creds = served
    body = json.dumps({"action": "START_TRAINING", "project": {"id": 11}}).encode()
    status, answer, _ = raw(url, post(url, creds, "/webhook", body, ctype="text/plain"))
    assert status == 415 and "application/json" in answer["error"]
    form = httpx.post(f"{url}/webhook", data={"action": "START_TRAINING"}, auth=creds.auth)
    assert form.status_code == 415
    foreign = httpx.get(f"{url}/health", auth=creds.auth, headers={"Host": "attacker.example:80"})
    assert foreign.status_code == 421 and "attacker.example" in foreign.json()["error"]
    page = httpx.post(f"{url}/webhook", content=body, auth=creds.auth,
                      headers={"Content-Type": "application/json", "Origin": "http://evil.example"})
    assert page.status_code == 403 and "evil.example" in page.json()["error"]
    assert httpx.post(f"{url}/webhook", content=body, auth=creds.auth,
                      headers={"Content-Type": "application/json", "Origin": "null"}).status_code == 403
    assert backend.calls == []
    own = httpx.post(f"{url}/setup", json={}, auth=creds.auth, headers={"Origin": LS_ORIGIN})
    assert own.status_code == 200 and own.json() == {"model_version": "none"}  # Label Studio's own origin


# -- what a request may cost ----------------------------------------------------------------------------------------
def test_an_oversized_body_is_refused_before_it_is_read(served):
    """Only the headers are sent, announcing 300 MB: the answer comes at once, so the server read nothing."""
    backend, url, creds = served
    status, answer, seconds = raw(url, post(url, creds, "/predict", b"", length=300 * 2**20))
    assert status == 413 and "max_body_mb" in answer["error"] and seconds < 5
    # A client sending a real body over the limit reads the answer too (not a reset connection).
    big = httpx.post(f"{url}/predict", content=b"[" + b"0," * 600_000 + b"0]", auth=creds.auth,
                     headers={"Content-Type": "application/json"})
    assert big.status_code == 413
    assert backend.calls == []


def test_too_many_tasks_are_refused_with_413(served):
    backend, url, creds = served
    tasks = [{"data": {"text": f"card pin {i}"}} for i in range(51)]
    answer = httpx.post(f"{url}/predict", json={"tasks": tasks, "label_config": XML}, auth=creds.auth)
    assert answer.status_code == 413 and "51 tasks" in answer.json()["error"] and "max_tasks" in answer.json()["error"]
    assert httpx.post(f"{url}/predict", json={"tasks": tasks[:50], "label_config": XML},
                      auth=creds.auth).json() == {"results": []}  # within the limit: answered (no model yet)


MALFORMED = {
    "not JSON": b'{"tasks": [',
    "not UTF-8": b'{"tasks": "\xff\xfe"}',
    "an array": b"[1, 2, 3]",
    "a string": b'"tasks"',
    "null": b"null",
    "empty": b"",
    "nested too deeply": b"[" * 100_000 + b"]" * 100_000,
    "an integer of 5,000 digits": b'{"project": ' + b"9" * 5000 + b"}",
    "tasks not a list": b'{"tasks": "card pin"}',
    "a task not an object": b'{"tasks": [1, 2]}',
    "task data not an object": b'{"tasks": [{"data": "card pin"}]}',
    "a text that is an object": json.dumps({"tasks": [{"data": {"text": {"a": 1}}}], "label_config": XML}).encode(),
    "project a list": b'{"project": [11], "tasks": []}',
    "label_config not a string": b'{"tasks": [{"data": {"text": "x"}}], "label_config": 5}',
    "label_config not XML": json.dumps({"tasks": [{"data": {"text": "x"}}], "label_config": "<View"}).encode(),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_body_gets_400_and_a_message(served, case, caplog):
    backend, url, creds = served
    path = "/predict"
    with caplog.at_level(logging.DEBUG, logger="studio.mlbackend"):
        status, answer, _ = raw(url, post(url, creds, path, MALFORMED[case]))
    assert status == 400 and answer["error"], answer
    assert not any(r.exc_info for r in caplog.records), "a traceback in the log"


@pytest.mark.parametrize("body, field", [({"action": 5}, "action"), ({"action": "ANNOTATION_CREATED",
                                                                     "annotation": "x"}, "annotation"),
                                         ({"action": "START_TRAINING", "project": {"id": [1]}}, "project")])
def test_a_malformed_webhook_gets_400(served, body, field):
    backend, url, creds = served
    answer = httpx.post(f"{url}/webhook", json=body, auth=creds.auth)
    assert answer.status_code == 400 and f"'{field}'" in answer.json()["error"]


def test_broken_requests_get_an_answer(served):
    backend, url, creds = served
    port = url.rsplit(":", 1)[1]
    status, answer, _ = raw(url, post(url, creds, "/predict", b"{}", length=None, extra="")
                            .replace(b"Content-Length: 2", b"Content-Length: abc"))
    assert status == 400 and "Content-Length" in answer["error"]
    status, answer, _ = raw(url, f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: "
                                 f"{creds.header}\r\nContent-Type: application/json\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n".encode())
    assert status == 411
    status, answer, _ = raw(url, b"GARBAGE\r\n\r\n")
    assert status == 400 and answer["error"]
    status, _, _ = raw(url, f"GET /health HTTP/1.0\r\nAuthorization: {creds.header}\r\n\r\n".encode())
    assert status == 400  # no Host


def test_texts_are_cut_to_the_models_window_before_tokenising(served, monkeypatch):
    backend, url, creds = served
    seen: list[str] = []

    class Stub:  # a run of this project's kind and classes, reading a window of 8 tokens
        task, class_names, max_length = "single_label", ["billing", "cards", "transfers"], 8

        def predict_proba(self, texts, progress=None):
            import numpy as np

            seen.extend(texts)
            return np.full((len(texts), 3), 1 / 3)
    monkeypatch.setattr(ProjectBackend, "predictor", lambda self: Stub())
    long = "card " * 200_000  # a million characters
    answer = httpx.post(f"{url}/predict", json={"tasks": [{"data": {"text": long}}, {"data": {"text": "pin"}}],
                                                "label_config": XML}, auth=creds.auth, timeout=30)
    assert answer.status_code == 200 and len(answer.json()["results"]) == 2
    assert seen == [long[:8 * 32], "pin"]


# -- many and slow clients --------------------------------------------------------------------------------------
def test_twenty_clients_at_once_all_get_an_answer(served):
    backend, url, creds = served
    barrier = threading.Barrier(20)

    def ask(i: int) -> int:
        barrier.wait(timeout=10)
        if i % 2:
            return httpx.get(f"{url}/health", auth=creds.auth, timeout=10).status_code
        return httpx.post(f"{url}/predict", json={"tasks": [{"data": {"text": "x"}}], "label_config": XML},
                          auth=creds.auth, timeout=10).status_code
    with ThreadPoolExecutor(20) as pool:
        assert list(pool.map(ask, range(20))) == [200] * 20


def test_a_backlog_of_twenty_connections_is_not_reset(tmp_path):
    """20 clients connecting while the server is busy (not accepting yet) wait in the listen backlog; the default
    backlog of 5 left the others to time out or be reset."""
    cfg = StudioConfig.from_dict({"labelstudio": {"url": LS_ORIGIN, "token": "t", "project_id": 11},
                                  "paths": {"state_dir": str(tmp_path / "state")}}, root=REPO)
    backend = MLBackend(Workspace(cfg))
    server = make_server(backend, "127.0.0.1", 0)
    creds = backend_credentials(backend.ws.state_dir)
    port = server.server_address[1]
    request = f"GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {creds.header}\r\n\r\n".encode()
    conns = []
    for _ in range(20):  # all connected (handshake done by the kernel) before the server accepts any
        conn = socket.create_connection(("127.0.0.1", port), timeout=0.5)
        conn.sendall(request)
        conns.append(conn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for conn in conns:
            conn.settimeout(10)
            assert conn.recv(12).startswith(b"HTTP/1.0 200")
    finally:
        for conn in conns:
            conn.close()
        server.shutdown()
        server.server_close()


def test_half_sent_requests_time_out_and_block_no_one(served):
    """30 clients send half a request and stop; another still gets its answer at once, and within the read timeout
    (1.5 s here) each half-sent request is answered 408 and its thread is free again."""
    backend, url, creds = served
    port = int(url.rsplit(":", 1)[1])
    before = threading.active_count()
    half = post(url, creds, "/webhook", b'{"action": "START_TR', length=60)
    stalled = []
    for i in range(30):
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn.sendall(half if i % 2 else half[:40])  # in the body / in the headers
        stalled.append(conn)
    start = time.monotonic()
    assert httpx.get(f"{url}/health", auth=creds.auth, timeout=5).status_code == 200
    assert time.monotonic() - start < 1.0
    for conn in stalled:
        reply = conn.recv(200)
        assert reply.startswith(b"HTTP/1.0 408") or reply == b"", reply
        conn.close()
    assert time.monotonic() - start < 6
    deadline = time.monotonic() + 5
    while threading.active_count() > before + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert threading.active_count() <= before + 1  # the handler threads ended
    assert backend.calls == ["health"]


def test_a_client_trickling_bytes_is_cut_off_at_the_deadline(served):
    """A byte every 0.2 s never trips a per-read timeout; the deadline on the whole request (1.5 s) still ends it."""
    backend, url, creds = served
    port = int(url.rsplit(":", 1)[1])
    request = post(url, creds, "/webhook", json.dumps({"action": "START_TRAINING"}).encode())
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        reply = b""
        try:
            for byte in request:
                conn.sendall(bytes([byte]))
                time.sleep(0.2)
                if time.monotonic() - start > 8:
                    break
        except OSError:  # the server shut its side
            pass
        conn.settimeout(5)
        try:
            reply = conn.recv(200)
        except OSError:
            pass
    assert time.monotonic() - start < 6
    assert reply.startswith(b"HTTP/1.0 408") or reply == b""
    assert backend.calls == []


def test_the_backend_listens_on_loopback_only():
    with pytest.raises(ConfigError, match="loopback"):
        StudioConfig.from_dict({"mlbackend": {"host": "0.0.0.0"}})
    assert project_id_of({"project": "\u00b2"}) is None and project_id_of({"project": "9" * 5000}) is None


# -- with the real Label Studio ---------------------------------------------------------------------------------
class Stub:
    """A run of the test project's kind and classes that always says "cards" (90%)."""

    task, class_names, max_length = "single_label", ["billing", "cards", "transfers"], 128

    def predict_proba(self, texts, progress=None):
        import numpy as np

        return np.tile([0.05, 0.9, 0.05], (len(texts), 1))


def stub_predictor(self: ProjectBackend) -> Stub:
    self._predictor_run = "run-stub"
    return Stub()


def serve_on(backend: MLBackend, port: int):
    server = make_server(backend, "127.0.0.1", port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def open_door(port: int):
    """The backend as it was before it had a secret: /health and /setup answer anyone."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Old(BaseHTTPRequestHandler):
        def _ok(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"status": "UP", "model_version": "none"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        do_GET = do_POST = _ok

        def log_message(self, *args) -> None:
            pass
    server = ThreadingHTTPServer(("127.0.0.1", port), Old)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def predictions_of(ls_client, project_id: int) -> list[dict]:
    ls_client.request("POST", "api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": project_id},
                      json_body={"selectedItems": {"all": True, "excluded": []}})
    return ls_client.request("GET", "api/predictions/", params={"project": project_id})


@pytest.mark.labelstudio
def test_connect_registers_basic_auth_and_label_studio_still_gets_predictions(studio_config, project, ls_client,
                                                                              monkeypatch):
    """A registration from before the secret (no auth, a webhook without headers) is brought up to date by
    `connect`: the ML backend as BASIC_AUTH, the webhook with the Authorization header. Label Studio's own calls
    (/health and /setup on connect, /predict on "retrieve predictions", the annotation webhook) then get through,
    also after the secret was made anew."""
    studio_config.labelstudio.project_id = project.id
    ws = Workspace(studio_config)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    old = open_door(port)
    try:  # added by hand in Label Studio: it then makes a webhook for every action itself, without headers
        ls_client.request("POST", "api/ml", json_body={"url": url, "project": project.id, "title": "studio"})
        (made,) = ls_client.request("GET", "api/webhooks/", params={"project": project.id})
        assert made["url"] == f"{url}/webhook" and made["send_for_all_actions"] and made["headers"] == {}
    finally:
        old.shutdown()
        old.server_close()
    monkeypatch.setattr(ProjectBackend, "predictor", stub_predictor)
    ls_client.import_tasks(project.id, [{"data": {"text": f"card pin {i}"}} for i in range(3)])
    backend = MLBackend(ws)
    server = serve_on(backend, port)
    try:
        assert predictions_of(ls_client, project.id) == []  # Label Studio without the secret: refused
        assert "predict" not in backend.calls

        creds = backend_credentials(ws.state_dir)
        ml_id = connect(ws, project.id, url)
        (registered,) = ls_client.request("GET", "api/ml", params={"project": project.id})
        assert registered["id"] == ml_id and registered["auth_method"] == "BASIC_AUTH"
        assert registered["basic_auth_user"] == creds.username and registered["basic_auth_pass_is_set"]
        assert "basic_auth_pass" not in registered  # Label Studio keeps it write-only
        (webhook,) = ls_client.request("GET", "api/webhooks/", params={"project": project.id})
        assert webhook["headers"] == {"Authorization": creds.header} and not webhook["send_for_all_actions"]
        assert sorted(webhook["actions"]) == ["ANNOTATIONS_CREATED", "ANNOTATION_CREATED", "ANNOTATION_UPDATED"]
        assert {"health", "setup"} <= set(backend.calls)  # Label Studio checked the backend with the secret

        predictions = predictions_of(ls_client, project.id)
        assert "predict" in backend.calls and len(predictions) == 3
        assert {p["result"][0]["value"]["choices"][0] for p in predictions} == {"cards"}

        task_id = predictions[0]["task"]
        ls_client.create_annotation(task_id, [{"from_name": "label", "to_name": "text", "type": "choices",
                                               "value": {"choices": ["cards"]}}])
        deadline = time.monotonic() + 30
        while "webhook" not in backend.calls and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "webhook" in backend.calls and backend.backend().new_annotations == 1  # the webhook got in
    finally:
        server.shutdown()
        server.server_close()

    credentials_path(ws.state_dir).unlink()  # the secret made anew (a new state folder, a deleted file)
    fresh = MLBackend(ws)
    server = serve_on(fresh, port)
    try:
        assert connect(ws, project.id, url) == ml_id  # the same registration, now with the new secret
        assert len(ls_client.request("GET", "api/webhooks/", params={"project": project.id})) == 1
        (webhook,) = ls_client.request("GET", "api/webhooks/", params={"project": project.id})
        assert webhook["headers"] == {"Authorization": backend_credentials(ws.state_dir).header} != \
            {"Authorization": creds.header}
        assert len(predictions_of(ls_client, project.id)) > len(predictions) and "predict" in fresh.calls
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.labelstudio
def test_label_studio_cannot_register_the_backend_without_the_secret(studio_config, project, ls_client, caplog):
    """As any other local process: Label Studio, asked to add the backend without the secret or with a guess, is
    refused at its /health check (401), and refuses to add it."""
    from studio.errors import LabelStudioError

    studio_config.labelstudio.project_id = project.id
    backend = MLBackend(Workspace(studio_config))
    server = serve_on(backend, free_port())
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with caplog.at_level(logging.WARNING, logger="studio.mlbackend"):
            for auth in ({}, {"auth_method": "BASIC_AUTH", "basic_auth_user": "label-studio",
                              "basic_auth_pass": "guess"}):
                with pytest.raises(LabelStudioError, match="400 to POST api/ml"):
                    ls_client.request("POST", "api/ml", json_body={"url": url, "project": project.id, **auth})
        refusals = [r.getMessage() for r in caplog.records]
        assert len(refusals) == 2 and all(m.startswith("refused GET /health") and ": 401 " in m for m in refusals)
        assert backend.calls == [] and ls_client.request("GET", "api/ml", params={"project": project.id}) == []
    finally:
        server.shutdown()
        server.server_close()
