"""What every `studio` command module shares: the command registry, a progress bar, terminal text (plain, aligned),
the snapshot argument and following a background job."""

from __future__ import annotations

import argparse
import time
from typing import Callable

from studio.workspace import Workspace

Handler = Callable[[Workspace, argparse.Namespace], int]
COMMANDS: dict[str, tuple[Handler, str, Callable[[argparse.ArgumentParser], None]]] = {}


def command(name: str, help_text: str, args: Callable[[argparse.ArgumentParser], None] = lambda p: None):
    """Decorator: register a handler as `studio <name>`; args(parser) adds its options."""
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = (fn, help_text, args)
        return fn
    return register


def bar(label: str, *, unit: str = "it") -> Callable[[int, int], None]:
    """A progress(done, total) callback drawing a tqdm bar on the terminal, counting `unit`s."""
    from tqdm import tqdm

    bars: list[tqdm] = []  # created on the first call, so work that turns out empty prints nothing

    def update(done: int, total: int) -> None:
        if not bars:
            if total and done >= total:
                # Done in one step (every embedding cached, one batch): nothing to watch, and tqdm's rate would be
                # the count over microseconds.
                return
            # The work before the first call is not timed, so it must not count towards the rate either.
            bars.append(tqdm(desc=label, total=total or None, unit=unit, initial=done, leave=True))
        bars[0].total = total or None
        bars[0].n = done
        bars[0].refresh()
        if total and done >= total:
            bars.pop().close()  # a later call (a second embedding pass) starts a new bar
    return update


def plain(text: str) -> str:
    """Library messages are written for the app's Markdown too; the terminal shows them without code backticks."""
    return text.replace("`", "")


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1 (argparse turns the error into a usage message)."""
    import argparse

    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is not 1 or more")
    return number


def warn(text: str | None) -> None:
    """Print a library warning (None = nothing to say) as one plain `warning:` line."""
    if text:
        print(f"warning: {plain(text)}")


def aligned(pairs: dict[str, object], *, indent: str = "") -> str:
    """'key: value' lines with the values in one column, for a person to read (not a dict repr)."""
    width = max((len(k) for k in pairs), default=0) + 2
    return "\n".join(f"{indent}{k + ':':<{width}}{v}" for k, v in pairs.items())


def project_arg(ws: Workspace):
    """The configured project; with Label Studio down, as the newest stored snapshot knows it (with a warning),
    so commands that read what is stored keep working."""
    project, offline = ws.project_or_stored()
    if offline:
        warn(f"{offline} Working on the newest stored snapshot.")
    return project


def snapshot_arg(ws: Workspace, snapshot_id: str | None):
    """The snapshot a command works on: the given id, else the project's newest."""
    from studio.errors import SnapshotNotFound

    if snapshot_id:
        return ws.store.load(snapshot_id)
    latest = ws.latest_snapshot(project_arg(ws).id)
    if latest is None:
        raise SnapshotNotFound("No snapshot yet.", hint="run studio sync first")
    return latest


def follow(ws: Workspace, job):
    """Show a background job's progress until it ends (Ctrl-C cancels it); return it if it succeeded.

    The foreground commands run as the same job the app starts, so they hold the same lock: a second training
    or cross-validation, from the app or another terminal, is refused while this one runs."""
    from tqdm import tqdm

    from studio.errors import TrainingError
    from training.jobs import cancel_job, get_job

    print(f"Job {job.id} (log: {job.log_file}); Ctrl-C cancels it.")
    bar, phase = None, None
    try:
        while job.active:
            time.sleep(0.5)
            job = get_job(job.id, jobs_root=ws.jobs_root)
            if job.max_steps and (bar is None or job.phase != phase):
                if bar is not None:
                    bar.close()
                bar, phase = tqdm(desc=job.phase or "training", total=job.max_steps, unit="step"), job.phase
            if bar is not None:
                bar.n = job.step
                bar.refresh()
    except KeyboardInterrupt:
        print("\nCancelling ...")
        job = cancel_job(job.id, jobs_root=ws.jobs_root)
    finally:
        if bar is not None:
            bar.close()
    if job.state != "succeeded":
        raise TrainingError(f"Job {job.id} {job.state}: {job.error or 'stopped'}.",
                            hint=f"the log is {job.log_file}; the current model and stored results are unchanged")
    return job


def curate_settings_note(ws: Workspace) -> None:
    """Say where the split and rebalancing settings come from when they were saved on the Curate page."""
    saved = ws.curation.saved_curate_settings()
    if saved is not None:
        print(f"Curating with the settings saved on the Curate page at {saved[1]} "
              f"({ws.curation.curate_settings_file}).")

