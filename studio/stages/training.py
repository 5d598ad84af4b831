"""The training stage of a workspace (`ws.training`): which snapshot "train on current labels" trains on, and
starting the background training job on its curated data version (training/jobs.py), for the Train page,
`studio train` and the ML backend alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.errors import LabelStudioAuthError, LabelStudioUnreachable
from studio.snapshot import Snapshot
from studio.types import ProgressFn

if TYPE_CHECKING:
    from studio.workspace import Workspace


class TrainingService:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def training_snapshot(self, *, sync: bool = True,
                          progress: ProgressFn | None = None) -> tuple[Snapshot, str | None]:
        """The snapshot "train on current labels" trains on: a fresh sync, or, when Label Studio cannot be reached
        (or `sync` is False), the newest stored snapshot of the project. Returns (snapshot, why it is not a fresh
        sync, or None). Raises the Label Studio error when nothing is stored, EmptyDataError when the project has
        no snapshot at all."""
        from studio.errors import EmptyDataError

        ws = self.ws
        if sync:
            try:
                return ws.sync(progress=progress).snapshot, None
            except (LabelStudioUnreachable, LabelStudioAuthError) as exc:
                stored = ws.stored_project()
                snapshot = ws.latest_snapshot(stored.id) if stored is not None else None
                if snapshot is None:
                    raise
                return snapshot, (f"Could not sync ({str(exc).splitlines()[0]}); training on the newest snapshot "
                                  f"{snapshot.id}.")
        project, _ = ws.project_or_stored()
        snapshot = ws.latest_snapshot(project.id)
        if snapshot is None:
            raise EmptyDataError(f"Project {project.id} has no snapshot yet.", hint="run `studio sync` first")
        return snapshot, None

    def start_training(self, snapshot: Snapshot):
        """Curate with the saved settings (`ws.curation.prepare`), export the data version and start the
        background training job ([sft] settings for an instruction -> response project, [train] otherwise).
        Raises JobAlreadyRunning (with the running job's id) if one is running, from any
        process."""
        from training.jobs import current_job, start_job

        ws = self.ws
        running = current_job(jobs_root=ws.jobs_root)
        if running is not None and running.active:
            from studio.errors import JobAlreadyRunning

            raise JobAlreadyRunning(f"Training job {running.id} is already running.", job_id=running.id)
        prepared = ws.curation.prepare(snapshot)
        kind = snapshot.schema.kind
        # An answer model fine-tunes a causal LM ([sft]); every other kind fine-tunes the encoder ([train]).
        config = ws.cfg.sft if kind.name == "generation" else ws.cfg.train
        return start_job(prepared.export.path, config=config, jobs_root=ws.jobs_root, runs_root=ws.runs_root,
                         cache_dir=ws.cache_dir, models_dir=ws.folder("models"))
