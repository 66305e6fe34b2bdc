"""Entry point of the ``baton`` command.

Exit codes: 0 success, 1 failure, 2 usage error, 130 Ctrl-C, 141 output closed early (a pipe
into ``head``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Each top-level command and the module of baton.cli that defines it. A command imports its
# module only (the others pull in Dagster, Alembic or the API): `baton tokens list` starts in
# about a third of the time that importing every module takes. `baton --help` imports all.
# tests/baton/cli/test_main.py checks this table against what the modules register.
COMMANDS: dict[str, str] = {
    "validate": "define",
    "schema": "define",
    "library": "library",
    "db": "db",
    "run": "run",
    "runs": "runs",
    "users": "approvals",
    "approvals": "approvals",
    "doctor": "doctor",
    "agents": "agents",
    "tokens": "tokens",
    "api": "api",
    "up": "up",
    "webhooks": "webhooks",
    "secrets": "secrets",
    "celery-worker": "celery_worker",
    "cache": "cache",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of ``command``'s module only when it is known."""
    parser = argparse.ArgumentParser(
        prog="baton", description="YAML orchestrations of AI agents, run on Dagster."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    names = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in names:
        importlib.import_module(f"baton.cli.{name}").add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    _printable_output()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        code = int(args.func(args))
        # Flushed here, not at exit: a reader gone (`baton runs list | head`) is then met below
        # rather than as "Exception ignored" noise once the interpreter shuts down.
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader has what it wanted. Point stdout at /dev/null so the final flush at exit
        # does not fail again, and exit as a shell reports a process ended by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:
        # The one place every command's database errors pass: an unreachable database or
        # tables behind the code become one line; anything else keeps its traceback.
        message = _database_failure(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1


def _database_failure(exc: Exception) -> str | None:
    """One line for an error that comes from the database's state, else None."""
    if "sqlalchemy" not in sys.modules:
        return None  # no command that got this far without SQLAlchemy met a database error
    # Imported only now: a command that succeeds never pays for Alembic here.
    from baton.db.diagnose import explain
    from baton.settings import get_settings

    try:
        return explain(exc, get_settings().db_url)
    except Exception:  # the diagnosis failing must not hide the original error
        return None


def _printable_output() -> None:
    # A value stored before inputs were checked at the edge may hold a lone surrogate; printing
    # it must not end the command with UnicodeEncodeError, so such characters are escaped.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


if __name__ == "__main__":
    sys.exit(main())
