"""The workspace's stage services (studio/stages/): one per stage, made on first use, and the Curate page's saved
settings counting from the moment a workspace opens. Offline: nothing here talks to Label Studio."""

from studio.config import PathsConfig, StudioConfig
from studio.curate import CurateConfig
from studio.stages.active import ActiveService
from studio.stages.curation import CurationService
from studio.stages.quality import QualityService
from studio.stages.review import ReviewService
from studio.stages.training import TrainingService
from studio.workspace import Workspace


def open_at(tmp_path) -> Workspace:
    return Workspace(StudioConfig(root=tmp_path, paths=PathsConfig(state_dir=str(tmp_path / "state"))))


def test_each_stage_is_one_service_over_the_workspace(tmp_path):
    ws = open_at(tmp_path)
    services = {"quality": QualityService, "review": ReviewService, "curation": CurationService,
                "training": TrainingService, "active": ActiveService}
    for name, cls in services.items():
        service = getattr(ws, name)
        assert isinstance(service, cls) and service.ws is ws
        assert getattr(ws, name) is service  # made once, then kept
    assert not hasattr(ws, "assess") and not hasattr(ws, "score_pool")  # no wrappers left on the workspace


def test_saved_curate_settings_apply_when_a_workspace_opens_and_can_be_forgotten(tmp_path):
    ws = open_at(tmp_path)
    assert ws.curation.saved_curate_settings() is None and ws.cfg.curate.ratios == [0.8, 0.1, 0.1]
    ws.curation.save_curate_settings(CurateConfig(ratios=[0.7, 0.2, 0.1], sampler="random_over"))
    assert ws.cfg.curate.sampler == "random_over"

    reopened = open_at(tmp_path)
    assert reopened.cfg.curate.ratios == [0.7, 0.2, 0.1] and reopened.cfg.curate.sampler == "random_over"
    assert reopened.curation.saved_curate_settings()[1]  # when they were saved
    reopened.curation.forget_curate_settings()
    assert reopened.cfg.curate.ratios == [0.8, 0.1, 0.1] and not reopened.curation.curate_settings_file.exists()
    assert open_at(tmp_path).cfg.curate.sampler == "none"
