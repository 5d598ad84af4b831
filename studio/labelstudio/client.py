"""The Label Studio client: the only module that talks to Label Studio over HTTP (through label-studio-sdk).

Every failure becomes a StudioError with the fix: server down -> LabelStudioUnreachable, a refused token ->
LabelStudioAuthError, a missing project -> ProjectNotFound. Bulk endpoints are used wherever they exist
(one import, one export, one predictions call), never one request per task.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import httpx

from studio.labelstudio.dm import _BOOKKEEPING, _updated_query, dm_filters, dm_item  # noqa: F401 - re-exported
from studio.errors import (LabelStudioAuthError, LabelStudioError, LabelStudioUnreachable, ProjectNotFound)
from studio.types import ProgressFn


@dataclass(frozen=True)
class ProjectInfo:
    id: int
    title: str
    label_config: str
    task_number: int


#: Added to every task listing. With an ML backend connected ("retrieve predictions automatically"), Label Studio
#: asks the model for pre-annotations of each listed task that has none, as if a person had opened the Data
#: Manager on that page (data_manager/api.py, TaskListAPI.get), unless the listing is a review listing. A sync
#: lists tasks to find what changed; it must not call a model nor create predictions (which move the tasks'
#: updated_at, so the next sync would fetch them again).
_NO_PREDICTIONS = {"review": "true"}


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class LabelStudioClient:
    """A thin wrapper over `label_studio_sdk.LabelStudio` that maps errors and adds the bulk calls we need."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        from label_studio_sdk import LabelStudio

        if not token:
            raise LabelStudioAuthError(
                f"No API token for Label Studio at {url}.",
                hint="run `studio up` (it writes data/state/labelstudio/credentials.json) or set "
                     "[labelstudio] token / STUDIO_LABELSTUDIO_TOKEN to your Account & Settings token",
            )
        self.url = url.rstrip("/")
        self.sdk = LabelStudio(base_url=self.url, api_key=token, timeout=timeout)
        # The SDK's own authenticated httpx client, for endpoints its typed methods make slow (the export).
        self._http = self.sdk._client_wrapper.httpx_client

    # -- plumbing -----------------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, json_body: Any = None, params: Any = None,
                timeout: float | None = None) -> Any:
        """One HTTP call with errors mapped to StudioErrors; returns the decoded JSON body (or None)."""
        try:
            options = {"timeout_in_seconds": timeout} if timeout else None
            response = self._http.request(path, method=method, json=json_body, params=params,
                                          request_options=options)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise LabelStudioUnreachable(
                f"Label Studio is not reachable at {self.url} ({exc.__class__.__name__}).",
                hint="start it with `make up` / `studio up` (if one is running, its terminal says why Label Studio "
                     "stopped: stop it with Ctrl-C and start it again), or fix [labelstudio] url in studio.toml",
            ) from None
        except httpx.TimeoutException:
            raise LabelStudioError(f"Label Studio at {self.url} did not answer {method} {path} in time.",
                                   hint="retry; for large projects raise [labelstudio] timeout_s") from None
        if response.status_code == 401 or (response.status_code == 403 and "token" in _detail(response).lower()):
            raise LabelStudioAuthError(
                f"Label Studio at {self.url} refused the API token ({response.status_code}: "
                f"{_detail(response)}).",
                hint="copy the token from Label Studio > Account & Settings into [labelstudio] token or "
                     "STUDIO_LABELSTUDIO_TOKEN; for the embedded server delete data/state/labelstudio to "
                     "start over",
            )
        if response.status_code >= 400:
            raise LabelStudioError(f"Label Studio answered {response.status_code} to {method} {path}: "
                                   f"{_detail(response)}")
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise LabelStudioError(f"{self.url} answered {method} {path} with something that is not JSON "
                                   f"({response.headers.get('content-type', 'no content type')}): is it Label Studio?",
                                   hint="check [labelstudio] url") from None

    def check(self) -> dict[str, Any]:
        """Raise unless the server answers and accepts the token; return the current user."""
        try:
            health = httpx.get(f"{self.url}/health", timeout=5)
        except httpx.HTTPError as exc:
            raise LabelStudioUnreachable(
                f"Label Studio is not reachable at {self.url} ({exc.__class__.__name__}).",
                hint="start it with `make up` / `studio up` (if one is running, its terminal says why Label Studio "
                     "stopped: stop it with Ctrl-C and start it again), or fix [labelstudio] url in studio.toml",
            ) from None
        if health.status_code != 200:
            raise LabelStudioUnreachable(f"{self.url}/health answered {health.status_code}; is it Label Studio?",
                                         hint="check [labelstudio] url")
        try:
            status = health.json().get("status")
        except (ValueError, AttributeError):
            status = None
        if status != "UP":  # Label Studio answers {"status": "UP"}; another web app answers something else
            raise LabelStudioUnreachable(f"{self.url} answers, but not as Label Studio does ({self.url}/health gave "
                                         f"{health.text[:80]!r}).",
                                         hint="point [labelstudio] url at the Label Studio server (its address in "
                                              "the browser, without /projects)")
        return self.request("GET", "api/current-user/whoami")

    # -- projects -----------------------------------------------------------------------------------------
    def list_projects(self) -> list[ProjectInfo]:
        out: list[ProjectInfo] = []
        page = 1
        while True:
            body = self.request("GET", "api/projects", params={"page": page, "page_size": 100})
            for p in body["results"]:
                out.append(_project(p))
            if not body.get("next"):
                return out
            page += 1

    def get_project(self, project_id: int) -> ProjectInfo:
        try:
            return _project(self.request("GET", f"api/projects/{project_id}"))
        except LabelStudioError as exc:
            if "404" in str(exc):
                raise ProjectNotFound(f"Project {project_id} does not exist on {self.url}.",
                                      hint="set [labelstudio] project_id to an existing id, or 0 to use "
                                           "the project title") from None
            raise

    def find_project(self, title: str) -> ProjectInfo | None:
        matches = [p for p in self.list_projects() if p.title == title]
        return min(matches, key=lambda p: p.id) if matches else None

    def create_project(self, title: str, label_config: str) -> ProjectInfo:
        project = self.sdk.projects.create(title=title, label_config=label_config)
        return self.get_project(project.id)

    def update_project(self, project_id: int, **fields: Any) -> None:
        self.request("PATCH", f"api/projects/{project_id}", json_body=fields)

    # -- tasks --------------------------------------------------------------------------------------------
    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]], *, batch_size: int = 1000,
                     progress: ProgressFn | None = None) -> int:
        """Bulk-import tasks (each may carry `annotations` / `predictions`). Returns the number imported."""
        done = 0
        if progress and len(tasks) > batch_size:  # several requests: a bar from 0, not from the first batch's share
            progress(0, len(tasks))
        for chunk in _chunks(tasks, batch_size):
            body = self.request("POST", f"api/projects/{project_id}/import", json_body=list(chunk),
                                timeout=max(60.0, len(chunk) / 50))
            done += int((body or {}).get("task_count", len(chunk)))
            if progress:
                progress(done, len(tasks))
        return done

    def export_tasks(self, project_id: int, *, ids: Sequence[int] | None = None,
                     chunk_size: int = 500) -> list[dict[str, Any]]:
        """Every task (labeled or not) with all its annotations, in one go; ids: only these (in short chunks)."""
        params: dict[str, Any] = {"exportType": "JSON", "download_all_tasks": "true"}
        if ids is None:
            try:
                return self._export_saved(project_id)
            except (LabelStudioUnreachable, LabelStudioAuthError):
                raise
            except LabelStudioError:  # an older server without saved exports: the direct endpoint
                return self.request("GET", f"api/projects/{project_id}/export", params=params, timeout=600)
        out: list[dict[str, Any]] = []
        for chunk in _chunks(list(ids), chunk_size):
            out += self.request("GET", f"api/projects/{project_id}/export",
                                params={**params, "ids[]": [int(i) for i in chunk]}, timeout=300)
        return out

    def _export_saved(self, project_id: int, *, timeout_s: float = 600.0) -> list[dict[str, Any]]:
        """Every task via a saved export (created, polled, downloaded, deleted). Same records as the direct
        export endpoint, but Label Studio loads drafts and annotators in bulk instead of ~2 queries per task
        (markedly faster for 10,000 tasks: measured in bench/sync.py, figures in the README's Benchmarks)."""
        body = {"title": "studio-sync",
                "serialization_options": {"drafts": {"only_id": True}, "predictions": {"only_id": True},
                                          "annotations__completed_by": {"only_id": True},
                                          "include_annotation_history": False},
                "annotation_filter_options": {"usual": True, "ground_truth": True, "skipped": True}}
        export = self.request("POST", f"api/projects/{project_id}/exports/", json_body=body, timeout=timeout_s)
        export_id = export["id"]
        try:
            deadline = time.monotonic() + timeout_s
            while export.get("status") != "completed":
                if export.get("status") == "failed" or time.monotonic() > deadline:
                    raise LabelStudioError(f"Saved export {export_id} ended as '{export.get('status')}'.")
                time.sleep(0.2)
                export = self.request("GET", f"api/projects/{project_id}/exports/{export_id}")
            return self.request("GET", f"api/projects/{project_id}/exports/{export_id}/download",
                                params={"exportType": "JSON"}, timeout=timeout_s)
        finally:
            self.request("DELETE", f"api/projects/{project_id}/exports/{export_id}")

    def task_ids_updated_since(self, project_id: int, since: datetime) -> list[int]:
        """Ids of tasks whose updated_at is after `since`. Creating, editing or deleting an annotation bumps
        its task's updated_at, so this is the change feed for incremental sync."""
        return self._task_ids({"project": project_id, "query": json.dumps(_updated_query(since))}, page_size=1000)

    def _task_ids(self, params: dict[str, Any], *, page_size: int) -> list[int]:
        """Every task id an api/tasks query returns, page by page."""
        ids: list[int] = []
        page = 1
        while True:
            body = self.request("GET", "api/tasks", params={**_NO_PREDICTIONS, **params, "fields": "task_only",
                                                            "page_size": page_size, "page": page})
            ids += [t["id"] for t in body.get("tasks", [])]
            if len(ids) >= int(body.get("total", 0)) or not body.get("tasks"):
                return ids
            page += 1

    def task_data_values(self, project_id: int, key: str, *, page_size: int = 1000) -> set[str]:
        """The values of data[key] over the project's tasks (tasks without it left out), page by page."""
        values: set[str] = set()
        seen, page = 0, 1
        while True:
            body = self.request("GET", "api/tasks", params={**_NO_PREDICTIONS, "project": project_id,
                                                            "fields": "task_only", "page_size": page_size,
                                                            "page": page})
            tasks = body.get("tasks", [])
            seen += len(tasks)
            values.update(str(t["data"][key]) for t in tasks if key in (t.get("data") or {}))
            if seen >= int(body.get("total", 0)) or not tasks:
                return values
            page += 1

    def count_tasks_updated_between(self, project_id: int, after: datetime, until: datetime) -> int:
        """How many tasks have after < updated_at <= until (one cheap counting request)."""
        body = self.request("GET", "api/tasks", params={
            **_NO_PREDICTIONS, "project": project_id, "fields": "task_only", "page_size": 1, "page": 1,
            "query": json.dumps(_updated_query(after, until))})
        return int(body.get("total", 0))

    def project_task_count(self, project_id: int) -> int:
        return int(self.request("GET", f"api/projects/{project_id}")["task_number"])

    # -- people, annotations, predictions -----------------------------------------------------------------
    def users(self) -> dict[int, str]:
        """user id -> email (the annotator's Label Studio identity)."""
        return {int(u["id"]): u.get("email") or u.get("username") or str(u["id"])
                for u in self.request("GET", "api/users")}

    def create_user(self, email: str, *, first_name: str = "", last_name: str = "") -> int:
        existing = {v: k for k, v in self.users().items()}
        if email in existing:
            return existing[email]
        body = self.request("POST", "api/users", json_body={"email": email, "username": email,
                                                            "first_name": first_name, "last_name": last_name})
        return int(body["id"])

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], *, completed_by: int | None = None,
                          lead_time: float | None = None, was_cancelled: bool = False) -> int:
        body: dict[str, Any] = {"result": result, "was_cancelled": was_cancelled}
        if completed_by is not None:
            body["completed_by"] = completed_by
        if lead_time is not None:
            body["lead_time"] = lead_time
        return int(self.request("POST", f"api/tasks/{task_id}/annotations/", json_body=body)["id"])

    def update_annotation(self, annotation_id: int, result: list[dict[str, Any]]) -> None:
        self.request("PATCH", f"api/annotations/{annotation_id}/", json_body={"result": result})

    def delete_annotation(self, annotation_id: int) -> None:
        self.request("DELETE", f"api/annotations/{annotation_id}/")


    def import_predictions(self, project_id: int, predictions: Sequence[dict[str, Any]], *,
                           batch_size: int = 5000, progress: ProgressFn | None = None) -> int:
        """Bulk-create predictions ({task, result, score, model_version}) in one request per batch."""
        done = 0
        for chunk in _chunks(predictions, batch_size):
            self.request("POST", f"api/projects/{project_id}/import/predictions", json_body=list(chunk),
                         timeout=max(60.0, len(chunk) / 100))
            done += len(chunk)
            if progress:
                progress(done, len(predictions))
        return done

    def model_versions(self, project_id: int) -> list[str]:
        """Model versions that have predictions in the project."""
        body = self.request("GET", f"api/projects/{project_id}/model-versions/") or {}
        return [str(version) for version in body]  # {version: prediction count}

    def delete_model_version(self, project_id: int, model_version: str, *, wait_s: float = 600.0) -> int:
        """Delete every prediction of one model version (never annotations); returns how many. Label Studio does it
        in one transaction (about a second per few thousand on SQLite): the timeout is sized to the version, and an
        answer that comes too late is checked until the version is gone, so a slow delete is not reported as a
        failure that invites a duplicating retry."""
        counts = self.request("GET", f"api/projects/{project_id}/model-versions/") or {}
        expected = int(counts.get(model_version, 0) or 0)
        try:
            body = self.request("DELETE", f"api/projects/{project_id}/model-versions/",
                                json_body={"model_version": model_version}, timeout=max(30.0, expected / 500))
            return int((body or {}).get("deleted_predictions", expected) if isinstance(body, dict) else expected)
        except LabelStudioUnreachable:
            raise
        except LabelStudioError as exc:
            if "did not answer" not in str(exc):
                raise
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            time.sleep(2.0)
            try:
                if model_version not in (self.request("GET", f"api/projects/{project_id}/model-versions/") or {}):
                    return expected
            except LabelStudioError:
                continue  # busy finishing the delete ("database is locked"): ask again
        raise LabelStudioError(f"Label Studio was still deleting the {expected:,} predictions of {model_version} "
                               f"after {wait_s:.0f} s.", hint="wait for it to finish, then push again")

    def ask_another_annotator(self, task_id: int) -> bool:
        """Put a labeled task back in Label Studio's labeling stream: overlap = its annotations + 1 and unlabeled, so
        it is served to someone who has not labeled it, and labeled again after their answer (measured). False when
        it already waits for one more annotation."""
        task = self.request("GET", f"api/tasks/{task_id}")
        done = int(task.get("total_annotations") or 0)
        if int(task.get("overlap") or 1) > done and not task.get("is_labeled"):
            return False
        self.request("PATCH", f"api/tasks/{task_id}/", json_body={"overlap": done + 1, "is_labeled": False})
        return True

    def next_task(self, project_id: int) -> dict[str, Any] | None:
        """The task Label Studio would serve to the current user next (its label stream)."""
        return self.request("GET", f"api/projects/{project_id}/next")

    def upsert_view(self, project_id: int, title: str, *, filters: dict[str, Any],
                    ordering: list[str] | None = None) -> int:
        """Create or update a Data Manager tab by title; returns its id. The tab hides the bookkeeping columns
        (ids, file names, timings, raw results), so the task's text is on screen beside the score."""
        data: dict[str, Any] = {"title": title, "filters": filters,
                                "hiddenColumns": {"explore": _BOOKKEEPING, "labeling": _BOOKKEEPING}}
        if ordering:
            data["ordering"] = ordering
        for view in self.request("GET", "api/dm/views", params={"project": project_id}) or []:
            if (view.get("data") or {}).get("title") == title:
                self.request("PATCH", f"api/dm/views/{view['id']}", json_body={"project": project_id, "data": data})
                return int(view["id"])
        return int(self.request("POST", "api/dm/views", json_body={"project": project_id, "data": data})["id"])

    def view_task_ids(self, project_id: int, view_id: int, *, page_size: int = 1000) -> list[int]:
        """Ids of the tasks a Data Manager tab lists (its filters applied), every page of them."""
        return self._task_ids({"project": project_id, "view": view_id}, page_size=page_size)


def _project(p: dict[str, Any]) -> ProjectInfo:
    return ProjectInfo(id=int(p["id"]), title=p.get("title") or "", label_config=p.get("label_config") or "",
                       task_number=int(p.get("task_number") or 0))


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("validation_errors") or body)[:300]
    return str(body)[:300]
