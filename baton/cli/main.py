"""Entry point of the ``baton`` command. Exit codes: 0 success, 1 failure, 2 usage error."""

from __future__ import annotations

import argparse
import logging
import sys

from baton.cli import (
    agents,
    api,
    approvals,
    db,
    define,
    doctor,
    library,
    run,
    runs,
    tokens,
    up,
    webhooks,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="baton", description="YAML orchestrations of AI agents, run on Dagster."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (
        define,
        library,
        db,
        run,
        runs,
        approvals,
        doctor,
        agents,
        tokens,
        api,
        up,
        webhooks,
    ):
        module.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    _printable_output()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


def _printable_output() -> None:
    # A value stored before inputs were checked at the edge may hold a lone surrogate; printing
    # it must not end the command with UnicodeEncodeError, so such characters are escaped.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


if __name__ == "__main__":
    sys.exit(main())
