"""The workspace: what every stage of one project shares. Configuration, where state lives, the Label Studio
connection, the snapshot store (and sync), the decision log and the cached embeddings.

This is the "store" the CLI, the Streamlit pages and the ML backend use, so none holds logic of its own. Each
stage's actions are a service of it (studio/stages/), created on first use: `ws.quality`, `ws.review`,
`ws.curation`, `ws.training`, `ws.active`, `ws.evaluation` (people judging two models' answers).

A workspace is one project's (`Workspace(cfg, project="support")`; default: $STUDIO_PROJECT's, else the primary
project); `ws.spec` is that project's ProjectConfig. `ws.folder(name)` is where a kind of state lives
(studio/layout.py): the project's own under <state>/projects/<key>/ (snapshots/, decisions/, quality/,
review_requests/, settings/, exports/, runs/, jobs/; drafts/ and evaluations/ for answer projects), the shared
ones (labelstudio/, cache/, models/, app/, mlbackend/) directly under <state>/.
"""

from __future__ import annotations

import copy
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from studio.config import ProjectConfig, StudioConfig, load_config
from studio.errors import LabelStudioAuthError, LabelStudioUnreachable, ProjectNotFound
from studio.labelstudio.client import LabelStudioClient, ProjectInfo
from studio.labelstudio.server import load_credentials
from studio.layout import SHARED_FOLDERS, make_private, migrate_flat_layout, project_dir
from studio.review import DecisionLog
from studio.snapshot import Snapshot, SnapshotStore
from studio.sync import SyncResult, sync_project
from studio.types import ProgressFn

if TYPE_CHECKING:
    from studio.stages.active import ActiveService
    from studio.stages.curation import CurationService
    from studio.stages.evaluation import EvaluationService
    from studio.stages.quality import QualityService
    from studio.stages.review import ReviewService
    from studio.stages.training import TrainingService


class Workspace:
    def __init__(self, cfg: StudioConfig | None = None, project: str | None = None) -> None:
        """cfg: the configuration (default: load_config()); project: the key of the project to work on
        (default: cfg.default_project, i.e. $STUDIO_PROJECT, else the primary project). An unknown key is a
        ConfigError listing the configured ones."""
        base = cfg or load_config()
        self.key = base.project(project).key
        self._base_cfg = base
        # Its own copy of the sections' mapping: the Curate page's saved settings of this project replace
        # cfg.curate here, never in another project's workspace. The sections themselves are shared.
        self.cfg = copy.copy(base)
        make_private(self.state_dir)
        migrate_flat_layout(self.state_dir, base.primary_project.key)  # once, from the layout before projects
        self.curation.use_saved_settings()  # the Curate page's saved settings count for every stage from the start

    def sibling(self, project: str) -> Workspace:
        """The workspace of another configured project, on the same configuration."""
        return self if project == self.key else Workspace(self._base_cfg, project)

    @property
    def spec(self) -> ProjectConfig:
        """This project's configuration (title, project_id, labeling_config, demo), read live from cfg."""
        return self.cfg.projects[self.key]

    # -- where things live ---------------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        """The state folder every project shares (Label Studio's data, caches); a project's own state is under
        project_dir."""
        return self.cfg.state_dir

    @property
    def project_dir(self) -> Path:
        """<state>/projects/<key>/: everything of this project."""
        return project_dir(self.state_dir, self.key)

    def folder(self, name: str) -> Path:
        """The folder (created) for one kind of state: a shared one (labelstudio, cache, models, app, mlbackend)
        under the state folder, any other under this project's folder."""
        path = (self.state_dir if name in SHARED_FOLDERS else self.project_dir) / name
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
        spec = self.spec
        if spec.project_id:
            return self.client.get_project(spec.project_id)
        found = self.client.find_project(spec.title)
        if found is None:
            raise ProjectNotFound(f"No project titled '{spec.title}' on {self.url}.",
                                  hint=f"run `studio up` to create it, or set {spec.where} to an existing project")
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
        spec = self.spec
        for snapshot_id in self.store.history()["snapshot_id"]:
            m = self.store.manifest(snapshot_id)
            if m["project_id"] == spec.project_id or (not spec.project_id and m["project_title"] == spec.title):
                return ProjectInfo(id=int(m["project_id"]), title=m["project_title"],
                                   label_config=m["labeling_config"], task_number=int(m["counts"]["tasks"]))
        return None

    # -- snapshots ---------------------------------------------------------------------------------------------
    def sync(self, *, full: bool = False, progress: ProgressFn | None = None) -> SyncResult:
        """Pull the project into a snapshot; then tasks whose re-review came back leave the "Needs review" tab."""
        result = sync_project(self.client, self.store, self.project().id, full=full, progress=progress)
        if result.created and self.review.rereview_log(result.snapshot.manifest["project_id"]).file.exists():
            self.review.retire_reviewed(result.snapshot)
        return result

    def latest_snapshot(self, project_id: int | None = None) -> Snapshot | None:
        return self.store.latest(project_id)

    # -- decisions and embeddings, which every stage reads -------------------------------------------------------
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

    # -- the stages (studio/stages/): created on first use -------------------------------------------------------
    @cached_property
    def quality(self) -> QualityService:
        from studio.stages.quality import QualityService

        return QualityService(self)

    @cached_property
    def review(self) -> ReviewService:
        from studio.stages.review import ReviewService

        return ReviewService(self)

    @cached_property
    def curation(self) -> CurationService:
        from studio.stages.curation import CurationService

        return CurationService(self)

    @cached_property
    def training(self) -> TrainingService:
        from studio.stages.training import TrainingService

        return TrainingService(self)

    @cached_property
    def active(self) -> ActiveService:
        from studio.stages.active import ActiveService

        return ActiveService(self)

    @cached_property
    def evaluation(self) -> EvaluationService:
        from studio.stages.evaluation import EvaluationService

        return EvaluationService(self)


def open_workspace(config_path: str | Path | None = None, project: str | None = None) -> Workspace:
    return Workspace(load_config(config_path), project)
