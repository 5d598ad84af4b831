"""Label Studio on PostgreSQL: the cluster the studio runs itself, or an external server given by URL.

With `[labelstudio] database = "postgresql"` and no `database_url`, the studio creates a cluster with the
PostgreSQL binaries of the machine (Debian's `postgresql` package: /usr/lib/postgresql/<version>/bin) under
`<state_dir>/labelstudio/postgres/`, listening on 127.0.0.1 only (no Unix socket), with scram-sha-256
passwords. The generated password is kept in `postgres.json` (0600) beside Label Studio's `credentials.json`.
A cluster left running by a killed run is found by `pg_ctl status` and reused; a stale `postmaster.pid` is
PostgreSQL's own business (it checks whether that process still lives).

PostgreSQL refuses to run as root. Run as root (a container, CI), the studio runs the cluster's programs as the
`postgres` system user, owner of the cluster folder, and makes the folders above it inside the state folder
traversable (0711: others may pass through, not list); every file in them stays 0600.

Label Studio is given the database through its documented variables: `DJANGO_DB=default` and `POSTGRE_NAME`,
`POSTGRE_USER`, `POSTGRE_PASSWORD`, `POSTGRE_HOST`, `POSTGRE_PORT` (label_studio/core/settings/base.py, 1.23).
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from studio.atomic import write_json_atomic
from studio.errors import ConfigError, LabelStudioError

DATABASE_NAME = "labelstudio"
SUPERUSER = "studio"
SYSTEM_USER = "postgres"  # who runs the cluster when the studio runs as root


@dataclass(frozen=True)
class Database:
    """Where Label Studio's PostgreSQL database is, and how to log in."""

    host: str
    port: int
    name: str
    user: str
    password: str

    def env(self) -> dict[str, str]:
        return {"DJANGO_DB": "default", "POSTGRE_NAME": self.name, "POSTGRE_USER": self.user,
                "POSTGRE_PASSWORD": self.password, "POSTGRE_HOST": self.host, "POSTGRE_PORT": str(self.port)}

    def where(self) -> str:
        """For messages and records: never the password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.name}"


def from_url(url: str) -> Database:
    """An external server from `postgresql://user:password@host:port/name`."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not name:
        raise ConfigError("[labelstudio] database_url is not a postgresql://user:password@host:port/name URL.",
                          hint="set it in studio.toml or STUDIO_LABELSTUDIO_DATABASE_URL")
    return Database(host=parts.hostname, port=parts.port or 5432, name=unquote(name),
                    user=unquote(parts.username or "postgres"), password=unquote(parts.password or ""))


# -- the studio's own cluster -----------------------------------------------------------------------------
def cluster_root(state_dir: Path) -> Path:
    return Path(state_dir) / "labelstudio" / "postgres"


def _data_dir(state_dir: Path) -> Path:
    return cluster_root(state_dir) / "data"


def _record_path(state_dir: Path) -> Path:
    return cluster_root(state_dir) / "postgres.json"


def binaries() -> Path:
    """The folder with initdb and pg_ctl: Debian keeps them off PATH, under /usr/lib/postgresql/<version>/bin
    (the newest version first); elsewhere, wherever PATH finds pg_ctl."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True,
                    key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    on_path = [Path(found).resolve().parent] if (found := shutil.which("pg_ctl")) else []
    for folder in [*debian, *on_path]:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise ConfigError('[labelstudio] database = "postgresql" needs the PostgreSQL server programs (initdb, pg_ctl), '
                      "and none were found.",
                      hint="install them (Debian: apt-get install postgresql), give an external server with "
                           '[labelstudio] database_url, or set database = "sqlite"')


def _as_owner() -> dict:
    """subprocess arguments that run a PostgreSQL program as the cluster's owner (not root)."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise ConfigError("PostgreSQL refuses to run as root, and there is no 'postgres' system user to run it as.",
                          hint="run the studio as a normal user, or install Debian's postgresql package "
                               "(it creates that user)") from None
    return {"user": SYSTEM_USER, "group": SYSTEM_USER, "extra_groups": []}


def _run(args: list[str], *, what: str) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, **_as_owner())
    if done.returncode != 0:
        raise LabelStudioError(f"PostgreSQL: {what} failed (exit {done.returncode}): "
                               f"{(done.stderr or done.stdout).strip()[-1500:]}",
                               hint=f"see {args[-1] if 'logfile' in what else 'the message above'}; delete the "
                                    "cluster folder only if nothing in it is needed")
    return done


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _make_reachable(state_dir: Path) -> None:
    """As root, the `postgres` user must pass through the state folders above the cluster: make them 0711
    (traversable, not listable) and hand the cluster folder to that user."""
    if os.geteuid() != 0:
        return
    owner = pwd.getpwnam(SYSTEM_USER)
    for folder in (Path(state_dir), Path(state_dir) / "labelstudio"):
        folder.chmod(folder.stat().st_mode & 0o777 | 0o711)
    for folder in Path(state_dir).resolve().parents:  # above the state folder: the user's, not ours to change
        mode = folder.stat()
        if not (mode.st_mode & 0o001 or mode.st_uid == owner.pw_uid):
            raise ConfigError(f"PostgreSQL refuses to run as root, so the studio runs it as the '{SYSTEM_USER}' "
                              f"user, who cannot pass through {folder} (mode {oct(mode.st_mode & 0o777)}) to reach "
                              f"the cluster under {state_dir}.",
                              hint=f"chmod o+x {folder}, put [paths] state_dir elsewhere, or run the studio as a "
                                   "normal user")
    os.chown(cluster_root(state_dir), owner.pw_uid, owner.pw_gid)


def _initdb(state_dir: Path, bindir: Path, password: str) -> None:
    root = cluster_root(state_dir)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    _make_reachable(state_dir)
    pwfile = root / "initdb.pw"  # read once by initdb (as the cluster's owner), deleted straight after
    pwfile.write_text(password)
    pwfile.chmod(0o600)
    if os.geteuid() == 0:
        owner = pwd.getpwnam(SYSTEM_USER)
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    try:
        _run([str(bindir / "initdb"), "-D", str(_data_dir(state_dir)), "-U", SUPERUSER, "--pwfile", str(pwfile),
              "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
             what="initdb")
    finally:
        pwfile.unlink(missing_ok=True)


def _running(state_dir: Path, bindir: Path) -> bool:
    if not (_data_dir(state_dir) / "PG_VERSION").exists():
        return False
    done = subprocess.run([str(bindir / "pg_ctl"), "status", "-D", str(_data_dir(state_dir))], capture_output=True,
                          stdin=subprocess.DEVNULL, **_as_owner())
    return done.returncode == 0  # 3: not running (a stale postmaster.pid included); 4: no data folder


def _create_database(db: Database) -> None:
    import psycopg

    with psycopg.connect(host=db.host, port=db.port, user=db.user, password=db.password, dbname="postgres",
                         autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db.name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{db.name}"')


def ensure_cluster(state_dir: Path) -> Database:
    """Create (first time) and start (unless it already runs) the studio's cluster; return its database."""
    bindir = binaries()
    record_file = _record_path(state_dir)
    if not (_data_dir(state_dir) / "PG_VERSION").exists():
        password = secrets.token_urlsafe(18)
        _initdb(state_dir, bindir, password)
        record = {"port": _free_port(), "user": SUPERUSER, "password": password, "name": DATABASE_NAME}
        write_json_atomic(record_file, record, mode=0o600)
    record = json.loads(record_file.read_text(encoding="utf-8"))
    if not _running(state_dir, bindir):
        if not _port_free(record["port"]):  # taken by another program since: move, Label Studio is told anew
            record["port"] = _free_port()
            write_json_atomic(record_file, record, mode=0o600)
        log = cluster_root(state_dir) / "postgres.log"
        _run([str(bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(_data_dir(state_dir)), "-o",
              f"-p {record['port']} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''", "-l", str(log)],
             what=f"starting the cluster (its log: {log}; logfile)")
    db = Database(host="127.0.0.1", port=int(record["port"]), name=record["name"], user=record["user"],
                  password=record["password"])
    _create_database(db)
    return db


def stop_cluster(state_dir: Path) -> bool:
    """Stop the studio's cluster if it runs (fast shutdown: open sessions are ended). True if it was running."""
    if not (_data_dir(state_dir) / "PG_VERSION").exists():
        return False
    bindir = binaries()
    if not _running(state_dir, bindir):
        return False
    _run([str(bindir / "pg_ctl"), "stop", "-w", "-t", "60", "-m", "fast", "-D", str(_data_dir(state_dir))],
         what="stopping the cluster")
    return True


# -- which database Label Studio is given ----------------------------------------------------------------
def _engine_file(state_dir: Path) -> Path:
    return Path(state_dir) / "labelstudio" / "database.json"


def _check_engine(state_dir: Path, engine: str) -> None:
    """Refuse to start Label Studio on another database than the one holding this state folder's labels:
    switching would start an empty Label Studio beside snapshots of tasks it does not have."""
    file = _engine_file(state_dir)
    if file.exists():
        recorded = json.loads(file.read_text(encoding="utf-8"))["database"]
    elif (Path(state_dir) / "labelstudio" / "data" / "label_studio.sqlite3").exists():
        recorded = "sqlite"  # a state folder from before the choice existed
    else:
        file.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(file, {"database": engine}, mode=0o600)
        return
    if recorded != engine:
        raise ConfigError(f"Label Studio's data in {state_dir} is in {recorded}, but [labelstudio] database now "
                          f"says {engine}: starting there would show an empty Label Studio, and the labels would "
                          "seem lost.",
                          hint=f"set [labelstudio] database back (it was {recorded}); to move, export each project "
                               "from Label Studio and import it into the new one with a fresh [paths] state_dir")


def database_env(state_dir: Path, database: str, database_url: str) -> dict[str, str]:
    """The environment that points Label Studio at its database, starting the studio's cluster if need be."""
    if database == "sqlite":
        _check_engine(state_dir, "sqlite")
        return {"DJANGO_DB": "sqlite"}
    db = from_url(database_url) if database_url else None
    _check_engine(state_dir, db.where() if db else "postgresql (the studio's own cluster)")
    return (db or ensure_cluster(state_dir)).env()
