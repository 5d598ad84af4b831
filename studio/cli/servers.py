"""`studio up | down | status | projects | mlbackend`: the servers and the projects on them."""

from __future__ import annotations

import argparse

import pandas as pd

from studio.cli.base import aligned, bar, command, plain
from studio.errors import LabelStudioAuthError, LabelStudioUnreachable
from studio.services import bring_up, run_until_stopped
from studio.workspace import Workspace


def _up_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-app", action="store_true", help="start Label Studio and provision, not the app")
    p.add_argument("--detach", action="store_true", help="return after start-up, leave servers running")


@command("up", "start Label Studio (embedded), provision every configured project and its demo data, start the "
         "ML backend and the app", _up_args)
def cmd_up(ws: Workspace, args: argparse.Namespace) -> int:
    from studio.labelstudio.server import credentials_path

    running = bring_up(ws, app=not args.no_app, progress=bar("Importing demo tasks", unit="task"))
    several = len(running.projects) > 1
    for i, (spec, project) in enumerate(running.projects):
        label = "\n  Label Studio : " if i == 0 else "                 "
        print(label + ws.cfg.labelstudio.base_url + f"/projects/{project.id}"
              + (f" ({spec.title}; studio --project {spec.key})" if several else ""))
    if running.app:
        print(f"  Studio app   : http://{ws.cfg.app.host}:{ws.cfg.app.port}"
              + (" (pick the project in the sidebar)" if several else ""))
    if running.backend:
        print("  ML backend   : " + ws.cfg.mlbackend.url
              + (f" (connected to the {len(running.projects)} projects)" if several else " (connected to the project)"))
    if running.login:
        print(f"  Login        : {running.login}, password and API token in {credentials_path(ws.state_dir)}"
              " (readable only by you)")
    if args.detach:
        from studio.services import record_detached

        record_detached(ws, running)
        return 0
    print("\nPress Ctrl-C to stop.", flush=True)
    return run_until_stopped(ws, running)


@command("down", "stop what studio up --detach left running: the app, the ML backend, the embedded Label Studio")
def cmd_down(ws: Workspace, args: argparse.Namespace) -> int:
    from studio.labelstudio.server import stop_server
    from studio.services import stop_detached

    for name in stop_detached(ws):
        print(f"Stopped the {name}.")
    print("Stopped Label Studio." if stop_server(ws.state_dir) else "No embedded Label Studio was running.")
    return 0


def _where(ls) -> str:
    """'embedded, on SQLite' / 'embedded, on PostgreSQL (the studio's cluster)' / 'external'."""
    if not ls.embedded:
        return "external"
    if ls.database == "sqlite":
        return "embedded, on SQLite"
    return "embedded, on PostgreSQL " + ("(database_url)" if ls.database_url else "(the studio's own cluster)")


@command("status", "is Label Studio reachable, which project, how many tasks and snapshots")
def cmd_status(ws: Workspace, args: argparse.Namespace) -> int:
    user = ws.client.check()
    project = ws.project()
    latest = ws.latest_snapshot(project.id)
    print(aligned({
        "Label Studio": f"{ws.url} ({_where(ws.cfg.labelstudio)})",
        "Logged in as": user.get("email") or user.get("username") or "?",
        "Project": f"{project.title} (id {project.id}, key {ws.key}), {project.task_number} tasks",
        "Snapshots": len(ws.store.ids()),
        "Newest snapshot": latest.id if latest else "none (run studio sync)",
    }))
    if latest:
        print(aligned({name.replace("_", " "): n for name, n in latest.manifest["counts"].items()}, indent="  "))
    for problem in ws.store.damaged():  # left out above; the other snapshots stay usable
        print(f"warning: {plain(problem)} `studio sync --full` writes the newest again.")
    return 0


@command("projects", "the configured projects: key, title, Label Studio id, tasks, task kind (* = the one commands "
         "work on)")
def cmd_projects(ws: Workspace, args: argparse.Namespace) -> int:
    from studio.errors import StudioError

    rows = []
    offline = None
    for key, spec in ws.cfg.projects.items():
        project = None
        if offline is None:
            try:
                project = ws.sibling(key).project()
            except (LabelStudioUnreachable, LabelStudioAuthError) as exc:  # then no project can be asked
                offline = str(exc).splitlines()[0]
            except StudioError:  # this one is missing (studio up creates it)
                project = None
        rows.append({"": "*" if key == ws.key else "", "key": key, "title": spec.title,
                     "id": project.id if project else (spec.project_id or "-"),
                     "tasks": project.task_number if project else "-",
                     "kind": _kind_name(ws, spec, project)})
    print(pd.DataFrame(rows).to_string(index=False))
    if offline:
        print(f"\n{offline} Ids and task counts are not known; the kinds are read from the labeling configs.")
    missing = [r["key"] for r in rows if r["tasks"] == "-" and not offline]
    if missing:
        print(f"\nNot on Label Studio yet: {', '.join(missing)} (studio up creates them).")
    return 0


def _kind_name(ws: Workspace, spec, project) -> str:
    """The task kind's name, from the project's labeling config on Label Studio, else from its configured file."""
    from studio.errors import StudioError
    from studio.labeling import parse_labeling_config

    try:
        xml = project.label_config if project else ws.cfg.path(spec.labeling_config).read_text(encoding="utf-8")
        return parse_labeling_config(xml, allow_no_classes=True).task
    except (OSError, StudioError) as exc:
        return f"? ({str(exc).splitlines()[0][:60]})"


@command("mlbackend", "serve the ML backend Label Studio calls (/health, /setup, /predict, /webhook) for every "
         "configured project")
def cmd_mlbackend(ws: Workspace, args: argparse.Namespace) -> int:
    import logging

    from studio.mlbackend import MLBackend, make_server
    from studio.mlbackend_http import credentials_path

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = ws.cfg.mlbackend
    backend = MLBackend(ws)
    known = backend.resolve()  # now, while Label Studio waits on nobody; a miss is looked up again on demand
    server = make_server(backend, cfg.host, cfg.port)  # with the state folder's secret (made on first use)
    print(f"ML backend on {cfg.url} for the projects "
          + ", ".join(f"{key} (id {ls_id})" for ls_id, key in known.items())
          + "".join(f", {key} (not on Label Studio yet)" for key in ws.cfg.projects if key not in known.values())
          + f"; callers authenticate with the basic-auth secret in {credentials_path(ws.state_dir)}",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
