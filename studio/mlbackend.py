"""An ML backend speaking Label Studio's protocol: /health, /setup, /predict, /webhook (and legacy /train).

Label Studio calls it when an annotator opens a task (pre-annotations from the current model) and when
someone presses "Start training" (a START_TRAINING webhook carrying only the project). Training is never run
inside the HTTP request: the request starts a thread that syncs, curates and launches the same background
job as the studio's Train button; a job already running is not started twice (the job lock holds across
processes). Served with the standard library so it adds no dependency; studio/mlbackend_http.py is the HTTP side:
loopback only, basic auth with a 0600 secret that `connect` registers with Label Studio, and limits on each
request.

`connect` also registers a project webhook, so Label Studio tells the backend about every annotation created or
updated. Every [active] refresh_every of them, a thread refits the fast learner on a fresh sync and pushes the
queue again (`ws.active.refresh_queue`: only when the queue served is the fast learner's; one refresh at a time),
and every [mlbackend] train_every of them, training starts.

One process serves every configured project. Each request names its Label Studio project (/predict, /setup and
/train: "project": "<id>.<created timestamp>"; webhooks: the project object, {"id": ...}); `MLBackend` routes it
to that project's `ProjectBackend`, which has the project's own workspace, current run and fast learner. A
project id that no configured project has gets an empty answer and a log line, never another project's model.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from studio.errors import (DataError, JobAlreadyRunning, StudioError)
from studio.labeling import parse_labeling_config
from studio.mlbackend_connect import WEBHOOK_ACTIONS, connect  # noqa: F401 - connect: registering it
from studio.mlbackend_http import backend_credentials, make_server  # noqa: F401 - make_server: the server's home
from studio.stages.active import check_run_fits
from studio.workspace import Workspace

log = logging.getLogger("studio.mlbackend")
ANNOTATION_EVENTS = set(WEBHOOK_ACTIONS)
RESOLVE_EVERY_S = 10.0  # how often an unknown project id may make the backend look the projects up again
#: A text is cut to this many characters per token of the model's window before it is tokenised: tokenising all of
#: a huge text costs memory in proportion to it (one 250 MB request grew the process to 9.3 GB), and a token of
#: natural text is far shorter (about 4-5 characters), so no text that fits the window is cut.
CHARS_PER_TOKEN = 32


def project_id_of(payload: dict[str, Any]) -> int | None:
    """The Label Studio project id a request is about, or None when it names none (a direct call).

    /predict, /setup and /train send "project": "<id>.<created timestamp>" (label_studio/ml/api_connector.py,
    `_create_project_uid`); webhooks send the project object ({"id": ..., "title": ...}); a webhook's task or
    annotation, and a predicted task, carry "project": <id>."""
    candidates = [payload.get("project")]
    for name in ("task", "annotation"):
        if isinstance(payload.get(name), dict):
            candidates.append(payload[name].get("project"))
    tasks = payload.get("tasks")
    if isinstance(tasks, list) and tasks and isinstance(tasks[0], dict):
        candidates.append(tasks[0].get("project"))
    for value in candidates:
        if isinstance(value, dict):
            value = value.get("id")
        if isinstance(value, bool) or value is None:
            continue
        head = str(value).split(".", 1)[0].strip()
        if head.isascii() and head.isdigit() and len(head) <= 18:  # not "²" (a digit to isdigit), nor 5,000 digits
            return int(head)
    return None


def _text_of(task: dict[str, Any], field: str, i: int) -> str:
    """A task's text (empty when it has none); a value that is no text is refused, naming the task."""
    value = (task.get("data") or {}).get(field)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"/predict: tasks[{i}].data.{field} is {type(value).__name__}, expected the task's text.",
                        hint=f"send the text the labeling config's ${field} names as a string")
    return str(value)


class ProjectBackend:
    """The behaviour behind the endpoints for one project (its workspace), separate from HTTP so it can be called
    directly."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._predictor: Any = None
        self._predictor_run: str | None = None
        self._lock = threading.Lock()
        self._trigger: threading.Thread | None = None
        self._fast: Any = None  # the fast learner (ws.active.fast_model) of snapshot self._fast_snapshot
        self._fast_snapshot: str | None = None
        self._warming: threading.Thread | None = None
        self._refreshing: threading.Thread | None = None
        self.new_annotations = 0  # since the last training trigger
        self.since_refresh = 0  # since the last queue refresh
        self.refreshes: list[str] = []  # what each finished refresh did, newest last

    def current_run(self):
        from training.runs import RunRegistry

        return RunRegistry(self.ws.runs_root).current()

    def predictor(self):
        """The current model, reloaded when a new run is promoted; None before the first run."""
        from training.predict import load_predictor

        run = self.current_run()
        if run is None:
            return None
        with self._lock:
            if self._predictor_run != run.id:
                self._predictor, self._predictor_run = load_predictor(run.path), run.id
            return self._predictor

    def fast_model(self):
        """Before the first training run: the fast learner on the newest snapshot's curated labels. It is fitted in
        a background thread (embedding the labeled texts can take a minute on a CPU the first time), so this returns
        None until it is ready (or the previous snapshot's model meanwhile), and None when there is nothing to learn
        from (fewer than two classes labeled, or multi-label)."""
        # No call to Label Studio here: it is waiting for this answer. A workspace syncs one project.
        snapshot = self.ws.latest_snapshot(self.ws.spec.project_id or None)
        if snapshot is None:
            return None
        with self._lock:
            stale = self._fast_snapshot != snapshot.id
            if stale and (self._warming is None or not self._warming.is_alive()):
                self._warming = threading.Thread(target=self._fit_fast, args=(snapshot,), daemon=True)
                self._warming.start()
            return self._fast

    def _fit_fast(self, snapshot) -> None:
        try:
            model = self.ws.active.fast_model(snapshot)
        except Exception:  # a background thread: log it, and do not retry on every request for this snapshot
            log.exception("[%s] could not fit the fast learner on snapshot %s", self.ws.key, snapshot.id)
            model = None
        with self._lock:
            self._fast, self._fast_snapshot = model, snapshot.id

    def health(self) -> dict[str, Any]:
        run = self.current_run()
        return {"status": "UP", "model_class": "studio-lora", "model_version": run.id if run else "none"}

    def setup(self, payload: dict[str, Any]) -> dict[str, Any]:
        run = self.current_run()
        return {"model_version": run.id if run else "none"}

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        """{"tasks": [...], "label_config": xml} -> {"results": [one prediction per task]}, from the current training
        run, else the fast learner (`fast-<snapshot>`) once it is ready, else none."""
        from studio.active import confidence_score
        from studio.push import prediction_result

        tasks = payload.get("tasks") or []
        if not tasks:
            return {"results": []}
        schema = parse_labeling_config(payload.get("label_config") or self.ws.project().label_config)
        if not schema.kind.supports("mlbackend"):  # e.g. answers: drafts are pushed in batches, not per request
            log.info("[%s] no pre-annotations for %s projects", self.ws.key, schema.kind.description)
            return {"results": []}
        texts = [_text_of(task, schema.text_field, i) for i, task in enumerate(tasks)]
        predictor = self.predictor()
        version = self._predictor_run
        if predictor is None:  # no training run yet: the fast learner, once it is ready
            predictor = self.fast_model()
            version = predictor.model_version if predictor is not None else None
        if predictor is None:
            return {"results": []}
        kind = schema.kind
        try:
            check_run_fits(predictor, kind, str(version))
        except DataError as exc:  # a model of another project or class set: no pre-annotation beats a wrong one
            log.warning("[%s] not pre-annotating: %s", self.ws.key, str(exc).splitlines()[0])
            return {"results": []}
        # The window the model reads: a run's max_length, else the encoder's (the fast learners embed with it).
        window = int(getattr(predictor, "max_length", 0) or self.ws.cfg.model.max_length)
        texts = [text[:window * CHARS_PER_TOKEN] for text in texts]
        targets, probs = kind.from_output(kind.predict(predictor, texts), texts)
        # Label Studio asks only for tasks without any prediction (ones a push did not cover): their score is the
        # margin, as there is no queue position for them; the same pre-annotation policy as a push (studio/pool.py).
        scores, top1 = confidence_score(probs), np.asarray(probs).max(axis=1)
        threshold = self.ws.cfg.active.preannotate_threshold
        return {"results": [{"result": prediction_result(kind, target, probability=p, preselect=p >= threshold),
                             "score": float(score), "model_version": version}
                            for target, score, p in zip(targets, scores, top1)]}

    def webhook(self, payload: dict[str, Any]) -> dict[str, Any]:
        action = payload.get("action", "")
        if action == "START_TRAINING":
            return self.trigger_training(reason="Start training in Label Studio")
        if action in ANNOTATION_EVENTS:
            count = len(payload["annotation"]) if isinstance(payload.get("annotation"), list) else 1
            self.new_annotations += count
            self.since_refresh += count
            answer: dict[str, Any] = {"status": "counted", "action": action}
            refresh = self.ws.cfg.active.refresh_every
            if refresh and self.since_refresh >= refresh:
                answer["refresh"] = self.refresh_queue(reason=f"{self.since_refresh} new annotations")
            every = self.ws.cfg.mlbackend.train_every
            if every and self.new_annotations >= every:
                self.new_annotations = 0
                return {**answer, **self.trigger_training(reason=f"{every} new annotations")}
            return answer
        return {"status": "ignored", "action": action}

    def refresh_queue(self, *, reason: str) -> str:
        """Refit the fast learner and push the queue again, in a thread (Label Studio waits ~1 s for a webhook's
        answer); a refresh already running is not started twice, and the annotations meanwhile count towards the
        next one."""
        with self._lock:
            if self._refreshing is not None and self._refreshing.is_alive():
                return "already running"
            self.since_refresh = 0
            self._refreshing = threading.Thread(target=self._refresh, args=(reason,), daemon=True)
            self._refreshing.start()
        return "started"

    def _refresh(self, reason: str) -> None:
        try:
            _, note = self.ws.active.refresh_queue()
        except StudioError as exc:
            note = f"could not refresh the queue: {str(exc).splitlines()[0]}"
        except Exception as exc:  # a background thread: log it; the next annotations try again
            log.exception("[%s] queue refresh failed", self.ws.key)
            note = f"queue refresh failed: {exc.__class__.__name__}"
        log.info("[%s] %s (%s)", self.ws.key, note, reason)
        with self._lock:
            self.refreshes.append(note)

    def wait_refresh(self, timeout: float) -> bool:
        """Wait for a running refresh (tests, shutdown); True when none is running any more."""
        thread = self._refreshing
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def trigger_training(self, *, reason: str) -> dict[str, Any]:
        """Start sync + curate + background training in a thread; return at once."""
        from training.jobs import current_job

        job = current_job(jobs_root=self.ws.jobs_root)
        with self._lock:
            if (job is not None and job.active) or (self._trigger is not None and self._trigger.is_alive()):
                return {"status": "already running", "job_id": job.id if job and job.active else "starting"}
            self._trigger = threading.Thread(target=self._train, args=(reason,), daemon=True)
            self._trigger.start()
        return {"status": "started", "reason": reason}

    def _train(self, reason: str) -> None:
        try:
            snapshot, note = self.ws.training.training_snapshot()
            if note:
                log.warning("[%s] %s", self.ws.key, note)
            job = self.ws.training.start_training(snapshot)
            log.info("[%s] training job %s started (%s)", self.ws.key, job.id, reason)
        except JobAlreadyRunning as exc:
            log.info("[%s] training already running: %s", self.ws.key, exc.job_id)
        except StudioError as exc:
            log.error("[%s] could not start training: %s", self.ws.key, exc)


class MLBackend:
    """The endpoints for every configured project: each request goes to its project's ProjectBackend.

    ws: the workspace requests that name no project go to (direct calls, as in tests); every other configured
    project gets its own workspace (ws.sibling) on first use."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.calls: list[str] = []  # endpoint names, newest last (asserted in tests)
        self._backends: dict[str, ProjectBackend] = {}
        self._ids: dict[int, str] = {}  # Label Studio project id -> project key
        self._resolved_at = float("-inf")
        self._lock = threading.Lock()

    def backend(self, key: str | None = None) -> ProjectBackend:
        """The backend of the project `key` (default: the workspace's own)."""
        key = key or self.ws.key
        with self._lock:
            if key not in self._backends:
                self._backends[key] = ProjectBackend(self.ws.sibling(key))
            return self._backends[key]

    def resolve(self) -> dict[int, str]:
        """Look up the Label Studio id of every configured project not known yet (a configured project_id, else
        the project found by title on Label Studio, else the newest stored snapshot's); returns id -> key."""
        with self._lock:
            self._resolved_at = time.monotonic()
            known = set(self._ids.values())
        for key, spec in self.ws.cfg.projects.items():
            if key in known:
                continue
            if spec.project_id:
                found: int | None = spec.project_id
            else:
                ws = self.backend(key).ws
                try:
                    found = ws.project().id
                except StudioError:  # Label Studio down, or the project not created yet
                    stored = ws.stored_project()
                    found = stored.id if stored is not None else None
            if found is not None:
                with self._lock:
                    self._ids.setdefault(found, key)
        with self._lock:
            return dict(self._ids)

    def key_of(self, project_id: int) -> str | None:
        """The configured project with this Label Studio id, or None."""
        with self._lock:
            key = self._ids.get(project_id)
            stale = time.monotonic() - self._resolved_at >= RESOLVE_EVERY_S
        if key is None and stale:
            key = self.resolve().get(project_id)
        return key

    def route(self, payload: dict[str, Any], endpoint: str) -> ProjectBackend | None:
        """The backend of the project the request names (the workspace's own when it names none); None, with a
        log line, for a project no configured project is."""
        project_id = project_id_of(payload)
        if project_id is None:
            return self.backend()
        key = self.key_of(project_id)
        if key is None:
            log.warning("%s for Label Studio project %s, which is none of the configured projects (%s): no answer",
                        endpoint, project_id, ", ".join(self.ws.cfg.projects))
            return None
        return self.backend(key)

    # -- the endpoints -------------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self.backend().health()

    def setup(self, payload: dict[str, Any]) -> dict[str, Any]:
        backend = self.route(payload, "setup")
        return backend.setup(payload) if backend is not None else {"model_version": "none"}

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        backend = self.route(payload, "predict")
        return backend.predict(payload) if backend is not None else {"results": []}

    def webhook(self, payload: dict[str, Any]) -> dict[str, Any]:
        backend = self.route(payload, "webhook")
        if backend is None:
            return {"status": "ignored", "action": payload.get("action", ""), "reason": "project not configured"}
        return backend.webhook(payload)

    def train(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The legacy /train request (older Label Studio, without the START_TRAINING webhook)."""
        backend = self.route(payload, "train")
        if backend is None:
            return {"status": "ignored", "reason": "project not configured"}
        return backend.trigger_training(reason="legacy /train")

    # -- the workspace's own project, for direct callers -----------------------------------------------------------
    def fast_model(self, project: str | None = None):
        return self.backend(project).fast_model()

    def trigger_training(self, *, reason: str, project: str | None = None) -> dict[str, Any]:
        return self.backend(project).trigger_training(reason=reason)
