"""`make up` passes its ports to `baton up` (read with `make -n`, nothing is started)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from baton.settings import PACKAGE_ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _dry_run(*args: str, env: dict[str, str] | None = None) -> str:
    # Only the `baton up` line matters: `make -n` may also list the install recipe when
    # pyproject.toml is newer than the venv's stamp.
    environ = {k: v for k, v in os.environ.items() if k != "BATON_API__PORT"}
    environ.update(env or {})
    done = subprocess.run(
        ["make", "-n", "-C", str(PACKAGE_ROOT), "up", *args],
        capture_output=True,
        text=True,
        check=True,
        env=environ,
    )
    lines = [line for line in done.stdout.splitlines() if "baton up" in line]
    assert len(lines) == 1, done.stdout
    return lines[0]


def test_make_up_passes_the_chosen_ports() -> None:
    assert _dry_run("PORT=3100", "API_PORT=8180").endswith("baton up --port 3100 --api-port 8180")


def test_make_up_defaults_to_3000_and_8080() -> None:
    assert _dry_run().endswith("baton up --port 3000 --api-port 8080")


def test_the_api_port_setting_is_the_default_of_api_port() -> None:
    line = _dry_run(env={"BATON_API__PORT": "9090"})
    assert line.endswith("baton up --port 3000 --api-port 9090")
