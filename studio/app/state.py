"""Cached handles for the pages. Every `st.cache_*` wrapper of the app lives here and nowhere else."""

from __future__ import annotations

import re
from typing import Callable

import streamlit as st

from pathlib import Path

from studio.config import StudioConfig, load_config
from studio.errors import StudioError
from studio.snapshot import Snapshot, SnapshotStore
from studio.workspace import Workspace


PROJECT = "project"  # the session-state key and URL query parameter of the chosen project


class _Studio:
    """The app process's configuration (read once: studio.toml + STUDIO_* overrides) and one workspace per
    project, each created when a session first picks it."""

    def __init__(self, config_path: str | None) -> None:
        import threading

        self.cfg = load_config(config_path)
        self._workspaces: dict[str, Workspace] = {}
        self._lock = threading.Lock()

    def workspace(self, key: str) -> Workspace:
        with self._lock:
            if key not in self._workspaces:
                self._workspaces[key] = Workspace(self.cfg, key)
            return self._workspaces[key]


@st.cache_resource(show_spinner=False)
def _studio(config_path: str | None) -> _Studio:
    return _Studio(config_path)


def _current() -> _Studio:
    import os

    return _studio(os.environ.get("STUDIO_CONFIG"))


def config() -> StudioConfig:
    return _current().cfg


def chosen_project() -> str:
    """The key of the project this browser session works on: the sidebar's choice (kept in session state), else
    the URL's ?project=, else $STUDIO_PROJECT, else the primary project. A key that is not configured (an old
    link) falls back to the default."""
    projects = config().projects
    for key in (st.session_state.get(PROJECT), st.query_params.get(PROJECT)):
        if key in projects:
            return key
    return config().project().key


def workspace() -> Workspace:
    """The chosen project's workspace (one per project for the app process)."""
    return _current().workspace(chosen_project())


def project_picker() -> str:
    """The project picker in the sidebar of every page: the configured projects, by title. The choice is kept in
    session state and in the URL (?project=<key>), so a reload or a shared link opens the same project. Returns
    the chosen key."""
    try:
        projects = config().projects
        st.session_state[PROJECT] = chosen_project()
    except StudioError as exc:  # a broken studio.toml: say so, as the pages would
        show_error(exc)
        st.stop()
    if len(projects) > 1:
        st.sidebar.selectbox("Project", list(projects), key=PROJECT, format_func=lambda key: projects[key].title,
                             on_change=_forget_page_state,
                             help="The Label Studio project every page works on (`studio projects` lists them).")
    st.query_params[PROJECT] = st.session_state[PROJECT]
    return st.session_state[PROJECT]


_KEPT_ON_SWITCH = {PROJECT, "author"}  # who decides stays the same person in another project


def _forget_page_state() -> None:
    """On a project switch: the pages' selections (task ids, filters, classes) mean nothing in the other project."""
    for key in list(st.session_state.keys()):
        if key not in _KEPT_ON_SWITCH:
            del st.session_state[key]


@st.cache_data(show_spinner=False, max_entries=8)
def load_snapshot(store_root: str, snapshot_id: str) -> Snapshot:
    """A snapshot from the store at store_root (a project's snapshots/), cached: snapshots never change."""
    return SnapshotStore(Path(store_root)).load(snapshot_id)


def latest_snapshot(ws: Workspace, project_id: int | None = None) -> Snapshot | None:
    history = ws.store.history(project_id)
    if history.empty:
        return None
    return load_snapshot(str(ws.store.root), history.iloc[0]["snapshot_id"])


# Streamlit renders Markdown (links, images that load from anywhere, :colour[...] directives, $LaTeX$) in most
# elements. Data people typed (a project title, a class name, a label, a name) is shown as text: `md` escapes every
# Markdown character of such a value; `safe` neutralises only what can load or link (brackets, $, <>) in a
# message the studio wrote around such values, so its own `code` and **bold** still show.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~$:<])")
_MD_ACTIVE = re.compile(r"([\\\[\]$<>])")


def md(value: object) -> str:
    """A user value as literal text inside a Markdown string."""
    return _MD_SPECIAL.sub(r"\\\1", str(value))


def safe(message: object) -> str:
    """A studio message that embeds user values, with links, images, directives and LaTeX neutralised."""
    return _MD_ACTIVE.sub(r"\\\1", str(message))


def flash(message: str) -> None:
    """Keep `message` for the next run and rerun now, so what the page shows (a queue, its decision column, counts)
    is the state the action left; rendered before the click, it would lag one step. `show_flash` shows it."""
    st.session_state["flash"] = message
    st.rerun()


def show_flash() -> None:
    if "flash" in st.session_state:
        st.success(st.session_state.pop("flash"))


def zipped(folder: Path) -> Callable[[], bytes]:
    """The folder as a zip file's bytes, built only when the download is clicked (st.download_button runs it)."""
    def build() -> bytes:
        import io
        import zipfile

        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(folder).rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    archive.write(path, path.relative_to(Path(folder).parent))
        return buffer.getvalue()

    return build


def download_folder(label: str, folder: Path, *, key: str) -> None:
    """A button that downloads `folder` (a data version, a run) as <name>.zip in the browser."""
    st.download_button(label, zipped(folder), file_name=f"{Path(folder).name}.zip", mime="application/zip",
                       key=key, on_click="ignore", icon=":material/download:")


def download_table(label: str, frame, *, file_name: str, key: str) -> None:
    """A button that downloads a table as CSV."""
    st.download_button(label, frame.to_csv(index=False).encode("utf-8"), file_name=file_name, mime="text/csv",
                       key=key, on_click="ignore", icon=":material/download:")


def show_error(exc: StudioError) -> None:
    """A StudioError as a readable message with its fix; never a traceback."""
    message = str(exc).split("\nFix: ")[0]
    st.error(safe(message), icon=":material/error:")
    if exc.hint:
        st.info(f"**How to fix:** {safe(exc.hint)}", icon=":material/build:")


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


# Quality reports being computed in the background after a sync, by snapshot id (one server process serves every
# session): {"done", "total", "error", "thread"}. The thread calls no st.* function; pages read this dict.
_BACKGROUND: dict[str, dict] = {}


def assess_in_background(ws: Workspace, snapshot: Snapshot) -> None:
    """Start computing `snapshot`'s quality report in a background thread (after a sync), unless one is stored
    or already being computed; the Quality pages show its progress and then the report."""
    import threading

    if not snapshot.schema.kind.supports("quality"):
        return
    running = _BACKGROUND.get(snapshot.id)
    if (running and running["thread"].is_alive()) or ws.quality.assessment(snapshot) is not None:
        return
    state: dict = {"done": 0, "total": 0, "error": None}

    def work() -> None:
        def progress(done: int, total: int) -> None:
            state["done"], state["total"] = done, total

        try:
            ws.quality.assess(snapshot, progress=progress)
        except StudioError as exc:
            state["error"] = str(exc).split("\nFix: ")[0]
        except Exception as exc:  # a background thread: keep the reason for the page
            state["error"] = f"{exc.__class__.__name__}: {exc}"

    state["thread"] = threading.Thread(target=work, name=f"quality-{snapshot.id}", daemon=True)
    _BACKGROUND[snapshot.id] = state
    state["thread"].start()


@st.fragment(run_every=2.0)
def _background_progress(snapshot_id: str) -> None:
    state = _BACKGROUND.get(snapshot_id)
    if state is None:
        return
    if state["thread"].is_alive():
        share = state["done"] / state["total"] if state["total"] else 0.0
        st.progress(min(share, 1.0), text=f"Computing the quality report of snapshot `{snapshot_id}` in the "
                                          f"background (started by the sync): {state['done']} of "
                                          f"{state['total'] or '?'} ...")
    else:
        _BACKGROUND.pop(snapshot_id, None)
        if state["error"]:
            st.error(f"The background quality run stopped: {safe(state['error'])}")
        else:
            st.rerun()  # the report is stored: show the whole page with it


def quality_report(ws: Workspace, snapshot: Snapshot, *, checks: str, embedding: str = "Embedding"):
    """The Quality pages' shared top: a **Run quality checks** button (its tooltip: `checks`) that runs
    ws.quality.assess with a progress bar labeled `embedding`, then the snapshot's stored report, or None with a
    message saying to press the button. While the report is being computed in the background (after a sync),
    its progress instead."""
    running = _BACKGROUND.get(snapshot.id)
    if running is not None and running["thread"].is_alive():
        _background_progress(snapshot.id)
        return None
    if st.button("Run quality checks", type="primary", help=checks):
        bar = st.progress(0.0, text=f"{embedding} ...")
        guarded(lambda: ws.quality.assess(snapshot, progress=progress_callback(bar, embedding)))
        bar.empty()
    report = guarded(lambda: ws.quality.assessment(snapshot))
    if report is None:
        st.info(f"No quality report for snapshot `{snapshot.id}` yet: press **Run quality checks**.")
    return report


def snapshot_or_stop(ws: Workspace):
    """The newest snapshot of the configured project, or a message and st.stop(). With Label Studio down, the
    newest stored one, with a warning."""
    try:
        project, offline = ws.project_or_stored()
    except StudioError as exc:
        show_error(exc)
        st.stop()
    if offline:
        st.warning(f"{safe(offline)} This page shows the newest stored snapshot; what needs Label Studio (sync, "
                   "send for re-review, push) fails until it is back.", icon=":material/cloud_off:")
    try:
        snapshot = latest_snapshot(ws, project.id)
    except StudioError as exc:  # the newest snapshot is damaged: say which file, and how to repair it
        show_error(exc)
        st.stop()
    damaged_state_warnings(ws, project.id)
    if snapshot is None:
        st.info("No snapshot yet: press **Sync** on the Overview page first.")
        st.stop()
    return project, snapshot


def damaged_state_warnings(ws: Workspace, project_id: int) -> None:
    """Name damaged files of the project's state (a snapshot manifest, lines of the decisions log), which are left
    out while the rest stays usable."""
    for problem in ws.store.damaged():
        st.warning(f"{safe(problem)} That snapshot is left out; `studio sync --full` writes the newest again.",
                   icon=":material/report:")
    note = ws.decisions(project_id).damaged_note
    if note:
        st.warning(safe(note), icon=":material/report:")


@st.cache_data(show_spinner=False, ttl=600)
def _label_studio_login(ws_key: str) -> str:
    """The email of the Label Studio account whose token the studio uses; "" when Label Studio cannot say.
    ws_key: the state folder (one Label Studio, one token, for every project)."""
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

