"""Fixtures for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.settings import get_settings
from tests.e2e.deploy import free_port, wait_for_jobs


@pytest.fixture
def deployment(isolated_settings: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`baton up` on a free port; yields the UI's base URL once the code location loaded.

    The API listens on another free port: ``get_settings().api.port`` in the test.
    """
    port = free_port()
    monkeypatch.setenv("BATON_API__PORT", str(free_port()))
    get_settings.cache_clear()
    baton = Path(sys.executable).with_name("baton")
    log = (isolated_settings.parent / "baton-up.log").open("w")
    proc = subprocess.Popen(
        [str(baton), "up", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_jobs(url, proc)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
