"""Fixtures of the sandbox attack tests: a worker with secrets where an attacker would look,
and a local listener that counts what reaches it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent_resources.sandbox.attacks import (
    ASSET_SECRET,
    KEY_FILE_SECRET,
    WORKER_SECRET,
    Listener,
)


@pytest.fixture
def listener() -> Iterator[Listener]:
    target = Listener()
    yield target
    target.close()


@pytest.fixture
def worker_secrets(
    isolated_settings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """A worker with secrets where an attacker looks: env, data folder, DAGSTER_HOME, assets."""
    monkeypatch.setenv("BATON_TEST_WORKER_SECRET", WORKER_SECRET)
    data = isolated_settings
    (data / "dagster").mkdir(parents=True, exist_ok=True)
    (data / "secret.key").write_text(KEY_FILE_SECRET)
    (data / "baton.db").write_text(f"api_tokens {WORKER_SECRET}")
    (data / "dagster" / "dagster.yaml").write_text(f"secret: {WORKER_SECRET}")
    other_run = data / "assets" / "other-run" / "step"
    other_run.mkdir(parents=True)
    (other_run / "image-1.png").write_text(ASSET_SECRET)
    return {
        "ppid": os.getpid(),
        "data": str(data),
        "files": [
            str(data / "secret.key"),
            str(data / "baton.db"),
            str(data / "dagster" / "dagster.yaml"),
            str(other_run / "image-1.png"),
            f"/proc/{os.getpid()}/environ",
            f"/proc/{os.getpid()}/cmdline",
            f"/proc/{os.getpid()}/mem",
            "/proc/1/environ",
            "/etc/shadow",
            "/etc/passwd",
            "/etc/hosts",
        ],
        "folders": [str(data), str(data / "assets"), "/proc", "/", "/etc", "/tmp"],
        "write": str(tmp_path / "written-by-the-agent"),
    }
