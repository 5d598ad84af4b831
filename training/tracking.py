"""Experiment tracking through the Trainer's own `report_to`, the same one setting for every task kind
([train] report_to and [sft] report_to; off, "none", by default): TensorBoard or a local MLflow store inside the
run folder, or wandb (offline unless WANDB_MODE says otherwise) when the user has it installed."""

from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from studio.errors import ConfigError

#: The values report_to takes.
REPORTERS = ("none", "tensorboard", "mlflow", "wandb")
#: report_to -> (the package it needs, the pip name to suggest).
REPORTER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow"),
                     "wandb": ("wandb", "wandb")}



def check_reporter(report_to: str, *, section: str = "sft") -> None:
    """Raise ConfigError when the configured logger's package is not installed."""
    if report_to == "none":
        return
    module, pip_name = REPORTER_PACKAGES[report_to]
    if importlib.util.find_spec(module) is None and not (report_to == "tensorboard"
                                                         and importlib.util.find_spec("tensorboardX")):
        raise ConfigError(f"[{section}] report_to = {report_to!r}, but the {pip_name} package is not installed.",
                          hint=f"pip install {pip_name}, or set report_to = \"none\" (metrics.json has the curves)")


@contextmanager
def reporter_environment(report_to: str, work: Path, run_id: str) -> Iterator[None]:
    """Point the logger at a local store inside the run folder for the duration of the training."""
    settings = {
        "tensorboard": {"TENSORBOARD_LOGGING_DIR": str(work / "logs")},
        "mlflow": {"MLFLOW_TRACKING_URI": (work / "mlruns").resolve().as_uri(),
                   "MLFLOW_EXPERIMENT_NAME": os.environ.get("MLFLOW_EXPERIMENT_NAME", "studio")},
        "wandb": {"WANDB_DIR": str(work), "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
                  "WANDB_PROJECT": os.environ.get("WANDB_PROJECT", "studio")},
    }.get(report_to, {})
    before = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
