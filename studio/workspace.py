"""The workspace: configuration + where state lives + the Label Studio connection + the snapshot store.

This is the "store" the CLI and the Streamlit pages use, so neither holds logic of its own. Paths under the
git-ignored state folder:

    labelstudio/   the embedded server's database, log, pid and credentials.json (0600)
    snapshots/     immutable snapshots (studio/snapshot.py)
    cache/         embedding cache
    decisions/     review decisions, appended (studio/review.py)
    exports/       curated data versions (studio/curate.py)
    runs/, jobs/   the training run registry and background jobs (training/)
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from studio.config import StudioConfig, load_config
from studio.errors import LabelStudioAuthError, LabelStudioUnreachable, ProjectNotFound
from studio.labelstudio.client import LabelStudioClient, ProjectInfo
from studio.labelstudio.server import load_credentials
from studio.review import DecisionLog, flagged_label_issues
from studio.review_loop import ReviewLoop
from studio.snapshot import Snapshot, SnapshotStore
from studio.sync import SyncResult, sync_project
from studio.types import ProgressFn

if TYPE_CHECKING:
    from studio.curate import CurateConfig


class Workspace(ReviewLoop):
    def __init__(self, cfg: StudioConfig | None = None) -> None:
        self.cfg = cfg or load_config()
        self._configured_curate = self.cfg.curate  # studio.toml's [curate], for forget_curate_settings
        saved = self.saved_curate_settings()
        if saved is not None:
            self.cfg.curate = saved[0]

    # -- where things live ---------------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.cfg.state_dir

    def folder(self, name: str) -> Path:
        path = self.state_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def cache_dir(self) -> Path:
        return self.folder("cache")

    @property
    def runs_root(self) -> Path:
        return self.folder("runs")

    @property
    def jobs_root(self) -> Path:
        return self.folder("jobs")

    @cached_property
    def store(self) -> SnapshotStore:
        return SnapshotStore(self.folder("snapshots"))

    # -- curation settings saved from the Curate page ------------------------------------------------------------
    @property
    def curate_settings_file(self) -> Path:
        return self.state_dir / "settings" / "curate.json"

    def saved_curate_settings(self) -> tuple[CurateConfig, str] | None:
        """The split and rebalancing settings saved from the Curate page, and when; they override studio.toml's
        [curate] for the app, `studio train` and `studio curate` alike. None when nothing was saved."""
        from studio.curate import CurateConfig

        file = self.curate_settings_file
        if not file.exists():
            return None
        data = json.loads(file.read_text())
        return CurateConfig.from_dict(data["curate"]), data.get("saved_at", "")

    def save_curate_settings(self, settings: CurateConfig) -> None:
        """Keep these settings for every later curation (written atomically; the next Workspace reads them)."""
        from datetime import datetime, timezone

        from studio.atomic import write_json_atomic

        self.curate_settings_file.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.curate_settings_file, {
            "curate": settings.to_dict(), "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        self.cfg.curate = settings

    def forget_curate_settings(self) -> None:
        """Back to studio.toml's [curate]."""
        self.curate_settings_file.unlink(missing_ok=True)
        self.cfg.curate = self._configured_curate

    # -- Label Studio ----------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.cfg.labelstudio.base_url

    def token(self) -> str:
        if self.cfg.labelstudio.token:
            return self.cfg.labelstudio.token
        creds = load_credentials(self.state_dir) if self.cfg.labelstudio.embedded else None
        if creds is None:
            where = ("the embedded server has not been started yet" if self.cfg.labelstudio.embedded
                     else f"no token is configured for {self.url}")
            raise LabelStudioAuthError(f"No Label Studio API token: {where}.",
                                       hint="run `make up` (embedded), or set [labelstudio] token / "
                                            "STUDIO_LABELSTUDIO_TOKEN for an external server")
        return creds.token

    @cached_property
    def client(self) -> LabelStudioClient:
        return LabelStudioClient(self.url, self.token(), timeout=self.cfg.labelstudio.timeout_s)

    def project(self) -> ProjectInfo:
        ls = self.cfg.labelstudio
        if ls.project_id:
            return self.client.get_project(ls.project_id)
        found = self.client.find_project(ls.project_title)
        if found is None:
            raise ProjectNotFound(f"No project titled '{ls.project_title}' on {self.url}.",
                                  hint="run `studio up` to create it, or set [labelstudio] project_title / "
                                       "project_id to an existing project")
        return found

    def project_or_stored(self) -> tuple[ProjectInfo, str | None]:
        """The configured project from Label Studio; when Label Studio is unreachable or refuses the token, the
        project as the newest stored snapshot knows it, so everything that reads snapshots keeps working.
        Returns (project, why it is the stored one, or None). Raises the Label Studio error if nothing is stored."""
        try:
            return self.project(), None
        except (LabelStudioUnreachable, LabelStudioAuthError) as exc:
            stored = self.stored_project()
            if stored is None:
                raise
            return stored, str(exc).splitlines()[0]

    def stored_project(self) -> ProjectInfo | None:
        """The configured project (by id, else by title) as its newest stored snapshot knows it, without asking
        Label Studio; None when nothing of it is stored."""
        ls = self.cfg.labelstudio
        for snapshot_id in self.store.history()["snapshot_id"]:
            m = self.store.manifest(snapshot_id)
            if m["project_id"] == ls.project_id or (not ls.project_id and m["project_title"] == ls.project_title):
                return ProjectInfo(id=int(m["project_id"]), title=m["project_title"],
                                   label_config=m["labeling_config"], task_number=int(m["counts"]["tasks"]))
        return None

    # -- snapshots ---------------------------------------------------------------------------------------------
    def sync(self, *, full: bool = False, progress: ProgressFn | None = None) -> SyncResult:
        return sync_project(self.client, self.store, self.project().id, full=full, progress=progress)

    def training_snapshot(self, *, sync: bool = True,
                          progress: ProgressFn | None = None) -> tuple[Snapshot, str | None]:
        """The snapshot "train on current labels" trains on, for the Train page, `studio train` and the ML backend
        alike: a fresh sync, or, when Label Studio cannot be reached (or `sync` is False), the newest stored
        snapshot of the project. Returns (snapshot, why it is not a fresh sync, or None). Raises the Label Studio
        error when nothing is stored, EmptyDataError when the project has no snapshot at all."""
        from studio.errors import EmptyDataError

        if sync:
            try:
                return self.sync(progress=progress).snapshot, None
            except (LabelStudioUnreachable, LabelStudioAuthError) as exc:
                stored = self.stored_project()
                snapshot = self.latest_snapshot(stored.id) if stored is not None else None
                if snapshot is None:
                    raise
                return snapshot, (f"Could not sync ({str(exc).splitlines()[0]}); training on the newest snapshot "
                                  f"{snapshot.id}.")
        project, _ = self.project_or_stored()
        snapshot = self.latest_snapshot(project.id)
        if snapshot is None:
            raise EmptyDataError(f"Project {project.id} has no snapshot yet.", hint="run `studio sync` first")
        return snapshot, None

    def latest_snapshot(self, project_id: int | None = None) -> Snapshot | None:
        return self.store.latest(project_id)

    # -- review, embeddings, curation ---------------------------------------------------------------------------
    def decisions(self, project_id: int) -> DecisionLog:
        return DecisionLog(self.folder("decisions"), project_id)

    def embed(self, texts: list[str], *, progress: ProgressFn | None = None):
        """(N, D) embeddings of texts with the configured encoder, through the disk cache."""
        from studio.embeddings import encode

        m = self.cfg.model
        return encode(texts, model=m.base_model, batch_size=m.embedding_batch_size, max_length=m.max_length,
                      cache_dir=self.cache_dir, progress=progress)

    def embed_words(self, texts: list[str], *, progress: ProgressFn | None = None) -> list[np.ndarray]:
        """Per text (W, D) contextual word vectors with the configured encoder, through the disk cache."""
        from studio.token_embeddings import encode_words

        m = self.cfg.model
        return encode_words(texts, model=m.base_model, max_length=m.max_length, batch_size=m.embedding_batch_size,
                            cache_dir=self.cache_dir, progress=progress)

    def assess(self, snapshot: Snapshot, *, progress: ProgressFn | None = None):
        """Run the label-quality checks (and multi-annotator consensus where tasks have 2+ annotators) on a
        snapshot, store the result under quality/<snapshot id>/ and return it."""
        from studio.assess import build_assessment

        folder = self._quality_folder(snapshot)
        if snapshot.schema.kind.name == "spans":
            from studio.assess_spans import build_span_assessment

            span_report = build_span_assessment(snapshot, lambda texts: self.embed_words(texts, progress=progress),
                                                folds=self.cfg.quality.folds, seed=self.cfg.quality.seed)
            span_report.save(folder)
            return span_report
        assessment = build_assessment(snapshot, lambda texts: self.embed(texts, progress=progress),
                                      config=self.cfg.quality, crossval_folder=folder)
        assessment.save(folder)
        return assessment

    def crossval_rows(self, snapshot: Snapshot) -> tuple[pd.DataFrame, list[str]]:
        """(task_id, text, label index, exclude) of the labeled tasks the quality checks see, and the class names.
        exclude: the snapshot's stored report flagged the label (the folds do not learn from it, as in the
        checks' refit round); all False before the first report."""
        from studio.assess import quality_inputs

        labeled, y, classes = quality_inputs(snapshot)
        rows = pd.DataFrame({"task_id": labeled["task_id"].to_numpy(), "text": labeled["text"].tolist(), "label": y})
        report = self.assessment(snapshot)
        flagged = set(flagged_label_issues(report.issues)["task_id"]) if report is not None else set()
        return rows.assign(exclude=rows["task_id"].isin(flagged)), classes

    def start_crossval(self, snapshot: Snapshot):
        """Start the background job that cross-validates the fine-tuned model ([train] settings, [quality] folds)
        on the snapshot's labels; the next `assess` of this snapshot uses its probabilities. Raises
        JobAlreadyRunning while a training or cross-validation job runs."""
        from training.crossval import start_crossval_job

        rows, classes = self.crossval_rows(snapshot)
        return start_crossval_job(rows, classes, output=self._quality_folder(snapshot),
                                  config=self.cfg.train, jobs_root=self.jobs_root, folds=self.cfg.quality.folds,
                                  seed=self.cfg.quality.seed, cache_dir=self.cache_dir,
                                  meta={"snapshot_id": snapshot.id, "tasks": len(rows),
                                        "excluded": int(rows["exclude"].sum())})

    def crossval_meta(self, snapshot: Snapshot) -> dict | None:
        """What is known about stored cross-validated probabilities for this snapshot (None: there are none)."""
        from studio.assess import read_crossval_meta

        return read_crossval_meta(self._quality_folder(snapshot))

    def assessment(self, snapshot: Snapshot):
        """The stored assessment of a snapshot (a SpanAssessment for span projects), or None if `assess` has not
        run on it."""
        from studio.assess import Assessment

        if snapshot.schema.kind.name == "spans":
            from studio.assess_spans import SpanAssessment

            return SpanAssessment.load(self._quality_folder(snapshot), snapshot.id)
        return Assessment.load(self._quality_folder(snapshot), snapshot.id)

    def _quality_folder(self, snapshot: Snapshot) -> Path:
        """<state>/quality/<snapshot id>/: the snapshot's quality report and cross-validated probabilities."""
        return self.state_dir / "quality" / snapshot.id

    def score_pool(self, snapshot: Snapshot, *, strategy: str | None = None, n: int = 20,
                   scorer: str | None = None, progress: ProgressFn | None = None):
        """Rank the snapshot's unlabeled tasks.

        scorer (None = [active] scorer): "run" = the current training run's predictions; "fast" = the fast
        learner (studio/learner.py) fitted in seconds on the curated labels of this snapshot; "auto" = the run
        if there is one, else the fast learner once two classes are labeled. With no model: a cold start
        (diverse sampling). strategy: a key of studio.active.STRATEGIES; None = DEFAULT_STRATEGY.
        Raises EmptyDataError when scorer="fast" has fewer than two labeled classes to learn from.
        """
        from studio.active import DEFAULT_STRATEGY, get_strategy
        from studio.pool import score_pool
        from studio.records import unlabeled_view
        from training.runs import RunRegistry

        scorer = scorer or self.cfg.active.scorer
        kind = snapshot.schema.kind
        kind.require("active", what="Active learning")
        pool = unlabeled_view(snapshot.tasks, snapshot.annotations)
        texts = pool["text"].tolist()
        current = RunRegistry(self.runs_root).current() if scorer != "fast" else None
        probs, version, embeddings = None, None, None
        if current is not None and texts:
            from training.predict import load_predictor

            predictor = load_predictor(current.path)
            check_run_fits(predictor, kind, current.id)
            probs = kind.predict(predictor, texts, progress=progress)
            version = current.id
        elif scorer != "run" and texts:
            fitted = self._fast_pool_probs(snapshot, texts, required=scorer == "fast", progress=progress)
            if fitted is not None:
                probs, embeddings, version = fitted
        chooser = get_strategy((strategy or DEFAULT_STRATEGY) if probs is not None else "cold_start")
        if chooser.needs_embeddings and texts and embeddings is None:
            embeddings = self.embed(texts)
        return score_pool(pool, probs, kind, strategy=chooser.name, n=n,
                          embeddings=embeddings, model_version=version)

    def _fast_pool_probs(self, snapshot: Snapshot, pool_texts: list[str], *, required: bool,
                         progress: ProgressFn | None = None):
        """(the fast learner's output on the pool, pool embeddings or None, model_version), fitted on the curated
        labels, or None (when not `required`) if there is nothing to learn from yet (studio/fast_models.py)."""
        from studio.fast_models import fast_scores

        return fast_scores(snapshot, self._curated(snapshot), pool_texts, embed=self.embed,
                           embed_words=self.embed_words, config=self.cfg.active, required=required, progress=progress)

    def fast_model(self, snapshot: Snapshot):
        """The fast learner fitted on the snapshot's curated labels alone (no pool), for pre-annotations before the
        first training run (studio/mlbackend.py); None if there is nothing to learn from yet."""
        from studio.fast_models import fast_model

        return fast_model(snapshot, self._curated(snapshot), embed=self.embed, embed_words=self.embed_words,
                          config=self.cfg.active)

    def _curated(self, snapshot: Snapshot) -> pd.DataFrame:
        from studio.prepare import curated_view

        return curated_view(snapshot, self.decisions(snapshot.manifest["project_id"]).read())

    def push_pool(self, scored, *, progress: ProgressFn | None = None) -> dict[str, int]:
        from studio.labeling import parse_labeling_config
        from studio.pool import push_pool

        project = self.project()
        return push_pool(self.client, project.id, scored, parse_labeling_config(project.label_config),
                         progress=progress)

    def start_training(self, snapshot: Snapshot):
        """Curate with the saved settings, export the data version and start the background training job.
        Raises JobAlreadyRunning (with the running job's id) if one is running, from any process."""
        from training.jobs import current_job, start_job

        running = current_job(jobs_root=self.jobs_root)
        if running is not None and running.active:
            from studio.errors import JobAlreadyRunning

            raise JobAlreadyRunning(f"Training job {running.id} is already running.", job_id=running.id)
        prepared = self.prepare(snapshot)
        return start_job(prepared.export.path, config=self.cfg.train, jobs_root=self.jobs_root,
                         runs_root=self.runs_root, cache_dir=self.cache_dir)

    def prepare(self, snapshot: Snapshot, *, export: bool = True, progress: ProgressFn | None = None):
        """Curate the snapshot with the saved settings and (by default) export the data version."""
        from studio.prepare import prepare

        decisions = self.decisions(snapshot.manifest["project_id"]).read()
        return prepare(snapshot, decisions, cfg=self.cfg.curate,
                       embed=lambda texts: self.embed(texts, progress=progress),
                       out_root=self.folder("exports") if export else None)


def check_run_fits(predictor: object, kind, run_id: str) -> None:
    """Refuse a training run whose task kind or classes are not the project's (its predictions would be wrong)."""
    from studio.errors import DataError

    run_kind = getattr(predictor, "task", None) or ("multi_label" if getattr(predictor, "multi_label", False)
                                                     else "single_label")
    if run_kind != kind.name or list(predictor.class_names) != list(kind.classes):
        raise DataError(f"Run {run_id} was trained for a {run_kind} task with classes "
                        f"{list(predictor.class_names)[:6]}, not this project's {kind.name} task with classes "
                        f"{list(kind.classes)[:6]}.",
                        hint="train a run on this project (Train page or `studio train`), then promote it")


def open_workspace(config_path: str | Path | None = None) -> Workspace:
    return Workspace(load_config(config_path))
