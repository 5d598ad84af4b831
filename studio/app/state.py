"""Cached handles for the pages. Every `st.cache_*` wrapper of the app lives here and nowhere else."""

from __future__ import annotations

from typing import Callable

import streamlit as st

from studio.errors import StudioError
from studio.snapshot import Snapshot
from studio.workspace import Workspace, open_workspace


@st.cache_resource(show_spinner=False)
def _workspace(config_path: str | None) -> Workspace:
    return open_workspace(config_path)


def workspace() -> Workspace:
    """The workspace for this app process (config read once: studio.toml + STUDIO_* overrides)."""
    import os

    return _workspace(os.environ.get("STUDIO_CONFIG"))


@st.cache_data(show_spinner=False, max_entries=8)
def load_snapshot(_ws_key: str, snapshot_id: str) -> Snapshot:
    return workspace().store.load(snapshot_id)


def latest_snapshot(ws: Workspace, project_id: int | None = None) -> Snapshot | None:
    history = ws.store.history(project_id)
    if history.empty:
        return None
    return load_snapshot(str(ws.state_dir), history.iloc[0]["snapshot_id"])


def show_error(exc: StudioError) -> None:
    """A StudioError as a readable message with its fix; never a traceback."""
    message = str(exc).split("\nFix: ")[0]
    st.error(message, icon=":material/error:")
    if exc.hint:
        st.info(f"**How to fix:** {exc.hint}", icon=":material/build:")


def guarded(fn: Callable[[], object]) -> object | None:
    """Run fn; turn a StudioError into a message on the page."""
    try:
        return fn()
    except StudioError as exc:
        show_error(exc)
        return None


def start_job(start: Callable[[], object], started: Callable[[object], str]) -> None:
    """Start a background job (training or cross-validation) and say so; while one runs (one at a time, from any
    process) show that instead of starting another; any other StudioError as a message."""
    from studio.errors import JobAlreadyRunning

    try:
        st.success(started(start()))
    except JobAlreadyRunning as exc:
        st.info(f"A job is already running ({exc.job_id}); one runs at a time, so it is shown instead of "
                "starting another.")
    except StudioError as exc:
        show_error(exc)


def progress_callback(bar, label: str) -> Callable[[int, int], None]:
    def update(done: int, total: int) -> None:
        bar.progress(min(1.0, done / total) if total else 0.0, text=f"{label}: {done}/{total}")
    return update


def snapshot_or_stop(ws: Workspace):
    """The newest snapshot of the configured project, or a message and st.stop(). With Label Studio down, the
    newest stored one, with a warning."""
    try:
        project, offline = ws.project_or_stored()
    except StudioError as exc:
        show_error(exc)
        st.stop()
    if offline:
        st.warning(f"{offline} This page shows the newest stored snapshot; what needs Label Studio (sync, send for "
                   "re-review, push) fails until it is back.", icon=":material/cloud_off:")
    snapshot = latest_snapshot(ws, project.id)
    if snapshot is None:
        st.info("No snapshot yet: press **Sync** on the Overview page first.")
        st.stop()
    return project, snapshot


@st.cache_data(show_spinner=False, ttl=600)
def _label_studio_login(_ws_key: str) -> str:
    """The email of the Label Studio account whose token the studio uses; "" when Label Studio cannot say."""
    try:
        user = workspace().client.check()
    except StudioError:
        return ""
    return str(user.get("email") or user.get("username") or "")


def author_field() -> str:
    """Who takes the decisions in this browser session: one field in the sidebar of every page that records
    decisions, kept for the session, first filled with the Label Studio login. Each decision records it."""
    if "author" not in st.session_state:
        st.session_state["author"] = _label_studio_login(str(workspace().state_dir))
    name = st.sidebar.text_input("Your name or email", value=st.session_state["author"], key="author_field",
                                 help="Recorded with each review decision (who, when, which snapshot).")
    st.session_state["author"] = name.strip()
    return st.session_state["author"]

