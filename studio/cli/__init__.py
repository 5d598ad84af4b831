"""`studio` command line: thin wrappers over the library, each StudioError printed as a message + fix.

    studio up | down | status | projects | mlbackend   run / stop / inspect the servers (servers.py)
    studio sync | snapshots | diff | import   get data in and snapshot it             (data.py)
    studio quality | crossval | autofix       label quality and fixing it             (quality.py)
    studio curate | train | runs | promote | active   curated labels -> model -> back  (model.py)

Each module registers its commands with `@command` (base.py); `studio --help` lists them all. Every command
works on one project: `--project KEY` (before or after the command name) or $STUDIO_PROJECT, else the primary.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

# Importing a command module registers its commands; `studio --help` lists them in this order.
from studio.cli import servers, data, quality, model  # noqa: F401, I001
from studio.cli.base import COMMANDS, plain
from studio.errors import StudioError
from studio.workspace import open_workspace


PROJECT_HELP = ("the project to work on, by its key (studio projects lists them; default: $STUDIO_PROJECT, else "
                "the primary project of [labelstudio]); before or after the command name")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Annotation-to-training data studio")
    parser.add_argument("--config", default=None, help="studio.toml to use (default: ./studio.toml)")
    parser.add_argument("--project", default=None, metavar="KEY", help=PROJECT_HELP)
    # Each command takes --project too (`studio sync --project support`); SUPPRESS keeps a value given before the
    # command name when none is given after it.
    project = argparse.ArgumentParser(add_help=False)
    project.add_argument("--project", default=argparse.SUPPRESS, metavar="KEY", help=PROJECT_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text, add_args) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text, parents=[project]))
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _run(argv)
        finally:
            # A reader that stopped early (`studio decisions | head`) shows up here at the latest, while it can
            # still be caught, rather than as an "Exception ignored" at interpreter exit.
            sys.stdout.flush()
    except BrokenPipeError:
        # Nobody reads the rest: stop quietly, the way `git log | head` does. stdout goes to devnull so that the
        # interpreter's own final flush does not fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # killed by SIGPIPE, as the shell reports it
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 128 + 2


class _WarnOnce(logging.Handler):
    """The studio's logged warnings (a damaged log line, a moved state folder) as `warning:` lines on stderr, each
    once per command, however often the file is read."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message not in self.seen:
            self.seen.add(message)
            print(f"warning: {plain(message)}", file=sys.stderr)


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    studio_log = logging.getLogger("studio")
    handler = next((h for h in studio_log.handlers if isinstance(h, _WarnOnce)), None)
    if handler is None:
        handler = _WarnOnce()
        studio_log.addHandler(handler)
    handler.seen.clear()
    try:
        ws = open_workspace(args.config, args.project)
        return COMMANDS[args.command][0](ws, args)
    except StudioError as exc:
        print(f"error: {plain(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
