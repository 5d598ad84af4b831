"""The curation stage of a workspace (`ws.curation`): the split and rebalancing settings saved from the Curate
page (the project's settings/curate.json, overriding studio.toml's [curate] for the app, `studio train` and
`studio curate` alike), and curating a snapshot with them into an exported data version (its exports/).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from studio.snapshot import Snapshot
from studio.split_ledger import SplitLedger, archive, moves
from studio.types import ProgressFn

if TYPE_CHECKING:
    from studio.curate import CurateConfig
    from studio.workspace import Workspace


class CurationService:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._configured = ws.cfg.curate  # studio.toml's [curate], for forget_curate_settings

    def use_saved_settings(self) -> None:
        """Let the settings saved from the Curate page, if any, replace studio.toml's [curate] in the workspace's
        config (the workspace does this when it opens)."""
        saved = self.saved_curate_settings()
        if saved is not None:
            self.ws.cfg.curate = saved[0]

    @property
    def curate_settings_file(self) -> Path:
        return self.ws.project_dir / "settings" / "curate.json"

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
        self.ws.cfg.curate = settings

    def forget_curate_settings(self) -> None:
        """Back to studio.toml's [curate]."""
        self.curate_settings_file.unlink(missing_ok=True)
        self.ws.cfg.curate = self._configured

    def split_ledger(self) -> SplitLedger | None:
        """Which split each task was given by earlier exports (studio/split_ledger.py); None before the first."""
        return SplitLedger.load(self.ws.project_dir)

    def prepare(self, snapshot: Snapshot, *, export: bool = True, progress: ProgressFn | None = None,
                resplit: bool = False):
        """Curate the snapshot with the saved settings and (by default) export the data version.

        Tasks the split ledger names keep their split; only new tasks are assigned, and an export records them.
        resplit=True assigns every task afresh with the current settings; with export, the new assignment
        replaces the ledger (the old one is archived in split_history/, and tasks outside this curation keep
        their entries). The result says what moves (`split_moves`) and whether the settings differ from the
        ledger's (`split_note`)."""
        from studio.prepare import prepare

        ws = self.ws
        cfg = ws.cfg.curate
        decisions = ws.decisions(snapshot.manifest["project_id"]).read()
        ledger = self.split_ledger()
        # Answers: a near-duplicate prompt is what the Quality page calls one ([genquality]), so none of the
        # prompts it groups lands in two splits; the classifiers keep [curate]'s stricter threshold.
        threshold = None
        if snapshot.schema.kind.name == "generation":
            threshold = min(cfg.near_duplicate_threshold, ws.cfg.genquality.near_duplicate_threshold)
        prepared = prepare(snapshot, decisions, cfg=cfg, embed=lambda texts: ws.embed(texts, progress=progress),
                           out_root=ws.folder("exports") if export else None, near_duplicate_threshold=threshold,
                           keep=None if resplit or ledger is None else ledger.assignments)
        prepared.split_moves = moves(ledger, prepared.split.df)
        prepared.split_note = None if resplit or ledger is None else ledger.settings_note(cfg.ratios, cfg.seed)
        if export:
            if resplit or ledger is None:
                fresh = SplitLedger(ratios=list(cfg.ratios), seed=cfg.seed)
                if ledger is not None:
                    archive(ws.project_dir)
                    in_data = set(prepared.split.df["task_id"].astype(str))
                    fresh.assignments = {t: s for t, s in ledger.assignments.items() if t not in in_data}
                ledger = fresh
            ledger.with_tasks(prepared.split.df).save(ws.project_dir)
        return prepared
