"""``baton celery-worker``: its refusals (tests/baton/test_celery_worker.py runs workers)."""

from __future__ import annotations

import sys

import pytest

from baton.celery_worker import INSTALL_HINT
from baton.cli.main import main


def test_without_dagster_celery_it_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "dagster_celery.executor", None)
    assert main(["celery-worker", "-n", "w1@%h"]) == 2
    assert INSTALL_HINT in capsys.readouterr().err


def test_a_concurrency_below_one_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["celery-worker", "-c", "0"]) == 2
    assert "--concurrency: expected a whole number >= 1" in capsys.readouterr().err
