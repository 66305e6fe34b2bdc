"""`baton library sync|problems`: the deployed library's invalid files, from a plain shell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baton.cli.main import main
from baton.settings import get_settings
from tests.helpers import write_library

GOOD = """
slug: hello-lib
name: Hello
version: 1
steps:
  - id: greet
    agent: echo
    with: {text: hi}
"""
BAD = """
slug: bad-lib
name: Bad
version: 1
steps:
  - id: greet
    agent: echo
    needs: [nowhere]
"""


@pytest.fixture
def library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = write_library(tmp_path / "lib", {"good.yaml": GOOD, "bad.yaml": BAD})
    monkeypatch.setenv("BATON_LIBRARY_DIR", str(folder))
    get_settings.cache_clear()
    return folder


def test_sync_stores_the_valid_files_and_reports_the_invalid_ones(
    library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["library", "sync"]) == 0
    out, err = capsys.readouterr()
    assert "1 orchestration(s)" in out
    assert "bad.yaml" in err and "nowhere" in err
    assert main(["library", "problems"]) == 1
    out, _ = capsys.readouterr()
    assert f"{library / 'bad.yaml'}:" in out and "nowhere" in out
    assert main(["library", "problems", "--json"]) == 1
    [problem] = json.loads(capsys.readouterr().out)["problems"]
    assert problem["path"] == str(library / "bad.yaml")
    assert problem["errors"][0]["line"] is not None
    # validate stays strict: the same library fails it.
    assert main(["validate", str(library)]) == 1


def test_problems_are_gone_once_the_file_is_fixed(
    library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["library", "sync"]) == 0
    (library / "bad.yaml").write_text(GOOD.replace("hello-lib", "bad-lib"))
    assert main(["library", "sync"]) == 0
    capsys.readouterr()
    assert main(["library", "problems"]) == 0
    assert "no invalid library files" in capsys.readouterr().out


def test_strict_sync_refuses(
    library: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BATON_STRICT_LIBRARY", "true")
    get_settings.cache_clear()
    assert main(["library", "sync"]) == 1
    assert "BATON_STRICT_LIBRARY" in capsys.readouterr().err
