"""The CLI prints what is stored even when an old row holds a lone surrogate."""

from __future__ import annotations

import io
import sys

import pytest

from baton.cli import main as cli_main


def test_a_lone_surrogate_is_printed_escaped_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", stdout)
    cli_main._printable_output()
    print("topic: caf\ud800e")
    stdout.flush()
    assert raw.getvalue() == b"topic: caf\\ud800e\n"
