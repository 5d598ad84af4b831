"""Atomic file writes: a reader sees the old file or the new one, never half of one, even after a crash.

Everything is written to a temporary file in the target's own folder (so the final os.replace is a rename
on one file system), then moved over the target. Temporary names start with "." and end in ".tmp", so
folder listings and `*.json` / `*.parquet` globs never pick up a file being written.
"""

from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | Path, *, mode: int | None = None, exclusive: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; write the file there, and on success it replaces `path`.

    On an error inside the block the temporary file is removed and `path` is left as it was.
    mode: create the temporary file with these permission bits before the caller writes it (e.g. 0o600 for a
    secret, which then never exists in a readable file); None leaves the creation to the caller's writer
    (the usual 0o666 minus the umask).
    exclusive: never overwrite: raise FileExistsError if `path` exists when the write completes (O_EXCL
    semantics, for a file that two processes might create at once).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(3)}.tmp")
    try:
        if mode is not None:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
        yield tmp
        if exclusive:
            os.link(tmp, path)  # fails if path exists; the temporary name is removed below
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes, *, mode: int | None = None, exclusive: bool = False) -> None:
    """Write `data` to `path` atomically (see `atomic_path` for mode and exclusive)."""
    with atomic_path(path, mode=mode, exclusive=exclusive) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)


def write_text_atomic(path: str | Path, text: str, *, encoding: str = "utf-8", mode: int | None = None,
                      exclusive: bool = False) -> None:
    """Write `text` to `path` atomically (see `atomic_path` for mode and exclusive)."""
    write_bytes_atomic(path, text.encode(encoding), mode=mode, exclusive=exclusive)


def write_json_atomic(path: str | Path, data: Any, *, mode: int | None = None, exclusive: bool = False) -> None:
    """Write `data` as indented JSON (values JSON cannot hold are written with str()) to `path` atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, default=str), mode=mode, exclusive=exclusive)


def append_lines(path: str | Path, lines: list[str]) -> None:
    """Append whole lines to a log file, serialised across processes (an exclusive flock around one write), so
    two writers never interleave half-lines; the lines are flushed to disk before returning."""
    import fcntl

    if not lines:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(line.rstrip("\n") + "\n" for line in lines).encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # The last line was cut by a crash mid-write: end it, so this append starts a line of its own (the
            # cut line stays as it is, reported by read_log_lines, and the new lines are whole).
            data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def log_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on `path`'s log across a read-decide-append (e.g. auto-fix reads the decisions in
    force, then appends new ones): two processes doing it at once would each decide on the same tasks. Uses a
    sibling `.lock` file, so plain appends (append_lines' own lock) are not blocked by a reader holding it."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass
class LogLines:
    """The JSON objects of an append-only JSONL log, and the lines that are damaged (1-based numbers), e.g. one
    cut by a crash mid-write or NUL bytes from a power loss. Nothing is rewritten: a damaged line stays in the
    file for a person to look at, and `note` says which."""

    path: Path
    rows: list[dict]
    damaged: list[int]

    @property
    def note(self) -> str | None:
        if not self.damaged:
            return None
        shown = ", ".join(str(n) for n in self.damaged[:10]) + (" ..." if len(self.damaged) > 10 else "")
        return (f"{self.path}: {len(self.damaged)} damaged line(s) (line {shown}) are left out; the other "
                f"{len(self.rows)} are used. The file is not changed: look at those lines, and mend or delete them.")


def read_log_lines(path: str | Path) -> LogLines:
    """Read an append-only JSONL log written by append_lines, skipping (and naming) damaged lines."""
    path = Path(path)
    rows: list[dict] = []
    damaged: list[int] = []
    if not path.exists():
        return LogLines(path, rows, damaged)
    text = path.read_bytes().decode("utf-8", errors="replace")
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            damaged.append(number)
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            damaged.append(number)
    if damaged:
        import logging

        logging.getLogger("studio").warning("%s", LogLines(path, rows, damaged).note)
    return LogLines(path, rows, damaged)
