"""docs/security.md names the test that proves each defence: every one it names must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "security.md"
# `tests/x.py::name` (or `::name` after a path named earlier in the same cell), or a bare file.
REFERENCE = re.compile(r"`(?P<path>tests/[\w/]+\.py)?(?:::(?P<name>\w+))?`")


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _references() -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        current: str | None = None
        for match in REFERENCE.finditer(line):
            path, name = match.group("path"), match.group("name")
            if path is None and name is None:
                continue
            current = path or current
            assert current is not None, f"'::{name}' with no file before it in: {line}"
            found.append((current, name))
    return found


def test_every_test_the_threat_model_names_exists() -> None:
    references = _references()
    assert len(references) > 40
    missing = []
    for path, name in references:
        file = ROOT / path
        if not file.is_file():
            missing.append(path)
        elif name is not None and name not in _test_names(file):
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/security.md names tests that do not exist: {missing}"
