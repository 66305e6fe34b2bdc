"""The command table of ``baton.cli.main``: each command imports only its own module."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from baton.cli.main import COMMANDS, build_parser


def _registered(module: str) -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    importlib.import_module(f"baton.cli.{module}").add_parsers(sub)
    return set(sub.choices)


def test_the_table_names_every_command_of_every_module_once() -> None:
    for module in set(COMMANDS.values()):
        assert _registered(module) == {c for c, m in COMMANDS.items() if m == module}, module
    full = build_parser()
    [sub] = [a for a in full._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_command_parses_with_its_module_alone(command: str) -> None:
    parser = build_parser(command)
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert command in sub.choices


def test_a_command_does_not_import_dagster_or_the_api_unless_it_needs_them() -> None:
    code = (
        "import sys; from baton.cli.main import build_parser; build_parser('tokens'); "
        "print(sorted(m for m in ('dagster', 'fastapi') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_output_into_a_pipe_closed_early_ends_quietly_without_a_traceback() -> None:
    # `baton schema | head -1`: the reader closes before the command has written everything.
    code = "import sys; from baton.cli.main import main; sys.exit(main(['schema']))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
