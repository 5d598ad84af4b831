"""`studio up | down | status | mlbackend`: the servers."""

from __future__ import annotations

import argparse

from studio.cli.base import aligned, bar, command
from studio.services import bring_up, run_until_stopped
from studio.workspace import Workspace


def _up_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-app", action="store_true", help="start Label Studio and provision, not the app")
    p.add_argument("--detach", action="store_true", help="return after start-up, leave servers running")


@command("up", "start Label Studio (embedded), provision the project and demo data, start the app", _up_args)
def cmd_up(ws: Workspace, args: argparse.Namespace) -> int:
    from studio.labelstudio.server import credentials_path

    running = bring_up(ws, app=not args.no_app, progress=bar("Importing demo tasks", unit="task"))
    print("\n  Label Studio : " + ws.cfg.labelstudio.base_url + f"/projects/{running.project.id}")
    if running.app:
        print(f"  Studio app   : http://{ws.cfg.app.host}:{ws.cfg.app.port}")
    if running.backend:
        print("  ML backend   : " + ws.cfg.mlbackend.url + " (connected to the project)")
    if running.login:
        print(f"  Login        : {running.login}, password and API token in {credentials_path(ws.state_dir)}"
              " (readable only by you)")
    if args.detach:
        from studio.services import record_detached

        record_detached(ws, running)
        return 0
    print("\nPress Ctrl-C to stop.", flush=True)
    run_until_stopped(ws, running)
    return 0


@command("down", "stop what studio up --detach left running: the app, the ML backend, the embedded Label Studio")
def cmd_down(ws: Workspace, args: argparse.Namespace) -> int:
    from studio.labelstudio.server import stop_server
    from studio.services import stop_detached

    for name in stop_detached(ws):
        print(f"Stopped the {name}.")
    print("Stopped Label Studio." if stop_server(ws.state_dir) else "No embedded Label Studio was running.")
    return 0


@command("status", "is Label Studio reachable, which project, how many tasks and snapshots")
def cmd_status(ws: Workspace, args: argparse.Namespace) -> int:
    user = ws.client.check()
    project = ws.project()
    latest = ws.latest_snapshot(project.id)
    print(aligned({
        "Label Studio": f"{ws.url} ({'embedded' if ws.cfg.labelstudio.embedded else 'external'})",
        "Logged in as": user.get("email") or user.get("username") or "?",
        "Project": f"{project.title} (id {project.id}), {project.task_number} tasks",
        "Snapshots": len(ws.store.ids()),
        "Newest snapshot": latest.id if latest else "none (run studio sync)",
    }))
    if latest:
        print(aligned({name.replace("_", " "): n for name, n in latest.manifest["counts"].items()}, indent="  "))
    return 0


@command("mlbackend", "serve the ML backend Label Studio calls (/health, /setup, /predict, /webhook)")
def cmd_mlbackend(ws: Workspace, args: argparse.Namespace) -> int:
    import logging

    from studio.mlbackend import MLBackend, make_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = ws.cfg.mlbackend
    server = make_server(MLBackend(ws), cfg.host, cfg.port)
    print(f"ML backend on {cfg.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
