"""One exception hierarchy, so the UI and the CLI can turn each failure into a clear message.

Every message names what was received, what was expected and the fix. Catch `StudioError` at the edges
(CLI entry point, Streamlit pages); let everything else propagate as a real bug.
"""

from __future__ import annotations

from typing import Iterable


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """" Did you mean 'x'?" for the choice closest to a mistyped name, or "" when none is close."""
    import difflib

    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


class StudioError(Exception):
    """Base class for every error the studio raises on purpose. `hint` is the suggested fix, if any."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\nFix: {self.hint}" if self.hint else base


class ConfigError(StudioError):
    """A configuration value (studio.toml, STUDIO_* environment, a labeling config) is missing or invalid."""


class LabelingConfigError(ConfigError):
    """A Label Studio labeling config (XML) the studio cannot use."""


class LabelStudioError(StudioError):
    """Talking to Label Studio failed."""


class LabelStudioUnreachable(LabelStudioError):
    """No Label Studio answers at the configured URL."""


class LabelStudioAuthError(LabelStudioError):
    """Label Studio answered, but refused the API token."""


class ProjectNotFound(LabelStudioError):
    """The configured project does not exist on the Label Studio server."""


class DataError(StudioError):
    """Input data (an import file, a snapshot, a label set) cannot be used as it is."""


class EmptyDataError(DataError):
    """There is nothing to work on: no tasks, no labels, or too few of them."""


class DamagedSnapshot(DataError):
    """A stored snapshot's file cannot be read (truncated, corrupt); `studio sync --full` writes it again."""


class SnapshotNotFound(DataError):
    """A snapshot id that does not exist in the store."""


class TrainingError(StudioError):
    """Training could not start or did not finish."""


class JobAlreadyRunning(TrainingError):
    """A background job holds the lock; `job_id` names it so the caller can show it instead."""

    def __init__(self, message: str, *, job_id: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.job_id = job_id


class UnsupportedTaskKind(StudioError):
    """A stage was asked to work on a task kind it does not handle (e.g. classification-only quality on spans)."""
