"""Registering the ML backend with a Label Studio project: the backend itself (basic auth with the backend's
secret), automatic pre-annotations, and a webhook for the project's annotation events (which the backend counts
for [active] refresh_every and [mlbackend] train_every)."""

from __future__ import annotations

import logging

from studio.errors import LabelStudioAuthError, LabelStudioError, LabelStudioUnreachable
from studio.mlbackend_http import backend_credentials
from studio.workspace import Workspace

log = logging.getLogger("studio.mlbackend")

#: The annotation events the project webhook sends to /webhook (counted for refresh_every and train_every).
WEBHOOK_ACTIONS = ["ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED"]


def connect(ws: Workspace, project_id: int, url: str) -> int:
    """Register the backend with the project (once), turn on automatic pre-annotations, and make sure Label Studio
    sends the project's annotation events to the backend's /webhook (a Label Studio webhook; once). Both
    authenticate with the backend's secret (`backend_credentials`): the ML backend as auth_method BASIC_AUTH, the
    webhook with an `Authorization` header among its `headers`. An existing registration is brought up to date, so
    one made before the backend had a secret (or with an older secret) works again."""
    client = ws.client
    creds = backend_credentials(ws.state_dir)
    headers = {"Authorization": creds.header}
    hook = f"{url.rstrip('/')}/webhook"
    # Label Studio also makes a webhook of its own (for every action, without headers) when a backend is added
    # and none has its URL (label_studio/ml/models.py, create_ml_webhook): ours comes first, and one found is mended.
    wanted = {"send_payload": True, "send_for_all_actions": False, "actions": WEBHOOK_ACTIONS, "is_active": True,
              "headers": headers}
    try:
        hooks = [h for h in client.request("GET", "api/webhooks/", params={"project": project_id}) or []
                 if h.get("url") == hook]
        if not hooks:
            client.request("POST", "api/webhooks/", json_body={"project": project_id, "url": hook, **wanted})
        for existing in hooks:
            have = {**existing, "actions": sorted(existing.get("actions") or [])}
            if any(have.get(key) != (sorted(value) if key == "actions" else value) for key, value in wanted.items()):
                client.request("PATCH", f"api/webhooks/{existing['id']}/", json_body=wanted)
    except (LabelStudioUnreachable, LabelStudioAuthError):
        raise
    except LabelStudioError as exc:  # e.g. a team server that refuses webhooks: pre-annotations still work
        log.warning("[%s] no annotation webhook (the queue will not refresh by itself): %s", ws.key,
                    str(exc).splitlines()[0])
    auth = {"auth_method": "BASIC_AUTH", "basic_auth_user": creds.username, "basic_auth_pass": creds.password}
    for backend in client.request("GET", "api/ml", params={"project": project_id}) or []:
        if backend.get("url", "").rstrip("/") == url.rstrip("/"):
            # Always: Label Studio never returns the password (write-only), so whether it is still today's cannot
            # be read; this PATCH also makes it check /health and /setup again with it.
            client.request("PATCH", f"api/ml/{backend['id']}", json_body={"url": backend["url"],
                                                                           "project": project_id, **auth})
            return int(backend["id"])
    body = client.request("POST", "api/ml", json_body={"url": url, "project": project_id, "title": "studio",
                                                      "is_interactive": False, **auth})
    client.update_project(project_id, evaluate_predictions_automatically=True, show_collab_predictions=True)
    return int(body["id"])
