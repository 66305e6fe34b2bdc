"""The layer rules of docs/architecture.md ("Layers") and the design notes, checked on the source.

An AST walk over every module, so every import counts: ``import x``, ``from x import y``
(``from pkg import sub`` counts as ``pkg.sub``), relative imports, imports inside functions and
under ``TYPE_CHECKING``, and ``importlib.import_module("x")`` / ``__import__("x")`` with a
literal name. A rule names the folder it governs and the modules it may not import; a failure
lists every offending ``file:line`` with the rule it breaks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("baton", "orchestration_defs", "agent_resources", "sensors")
# Not part of the layered code: the tests and benches may import anything, and the Alembic
# revisions run only under `baton db`.
UNGOVERNED = {"tests", "bench", "migrations"}


@dataclass(frozen=True)
class Import:
    """One module a source file imports, and where."""

    path: Path
    line: int
    module: str

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}:{self.line}"


@dataclass(frozen=True)
class Rule:
    """``folder`` (a path under the project) may not import any of ``forbidden``.

    A pattern ``a.b`` forbids ``a.b`` and everything under it; ``dagster*`` forbids every
    top-level name starting with ``dagster`` (``dagster_graphql``, ``dagster_webserver``).
    """

    name: str
    folder: str
    forbidden: tuple[str, ...]
    why: str

    def broken_by(self, module: str) -> str | None:
        return next((p for p in self.forbidden if _matches(module, p)), None)


RULES = (
    Rule(
        "language-stands-alone",
        "orchestration_defs/language",
        (
            "dagster*",
            "sqlalchemy",
            "alembic",
            "baton",
            "orchestration_defs.compiler",
            "orchestration_defs.definitions",
            "sensors",
            "agent_resources",
        ),
        "the language (spec models, loader, templates, validation) imports neither Dagster nor "
        "the store, nor anything built on it, so `baton validate`, the API and editors can use "
        "it alone",
    ),
    Rule(
        "core-launches-by-job-name",
        "baton",
        ("orchestration_defs.compiler", "orchestration_defs.definitions", "sensors"),
        "the core (settings, store, state machine, segments, approvals, CLI, API) never reaches "
        "into job building or the sensors; it launches runs through the Dagster instance by "
        "job name (importing orchestration_defs.language is fine)",
    ),
    Rule(
        "api-is-a-client",
        "baton/api",
        ("orchestration_defs.compiler", "orchestration_defs.definitions", "sensors"),
        "baton/api is a client of the store, the approvals service and the Dagster instance like "
        "the CLI; it imports neither the compiler nor the sensors",
    ),
    Rule(
        "agents-know-no-jobs",
        "agent_resources",
        (
            "orchestration_defs.compiler",
            "orchestration_defs.definitions",
            "sensors",
            "baton.api",
            "baton.cli",
        ),
        "agents know nothing of jobs, sensors or Baton's front ends: a request in, a result out",
    ),
    Rule(
        "catalog-is-plain-python",
        "agent_resources/catalog",
        (
            "dagster*",
            "sqlalchemy",
            "baton",
            "orchestration_defs.compiler",
            "orchestration_defs.definitions",
            "sensors",
        ),
        "the agent catalog is plain Python so that the validator can read it (it reads its "
        "YAML with the language's bounded loader, itself plain Python)",
    ),
    Rule(
        "sensors-never-call-agents",
        "sensors",
        ("agent_resources",),
        "sensors read the store and return run requests; they never call an agent",
    ),
)


def _matches(module: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return module.startswith(pattern[:-1])
    return module == pattern or module.startswith(pattern + ".")


def _package_of(path: Path, root: Path) -> list[str]:
    """The package a file's relative imports start from: its own for ``__init__.py``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1]


def _from_base(node: ast.ImportFrom, path: Path, root: Path) -> str:
    if not node.level:
        return node.module or ""
    package = _package_of(path, root)
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _dynamic(node: ast.Call) -> str | None:
    """The literal module name of ``importlib.import_module("x")`` or ``__import__("x")``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def imports_of(path: Path, root: Path = ROOT) -> Iterator[Import]:
    """Every module ``path`` (a file under ``root``) imports, wherever in the file."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(node, path, root)
            if base:
                yield Import(path, node.lineno, base)
            # `from pkg import sub` imports the module pkg.sub when sub is one.
            for alias in node.names:
                yield Import(path, node.lineno, f"{base}.{alias.name}".lstrip("."))
        elif isinstance(node, ast.Call) and (module := _dynamic(node)):
            yield Import(path, node.lineno, module)


def violations(rule: Rule, root: Path = ROOT) -> list[str]:
    """``file:line: imports X`` for every import under the rule's folder that it forbids."""
    found: list[str] = []
    for path in sorted((root / rule.folder).rglob("*.py")):
        seen: set[tuple[int, str]] = set()
        for imp in imports_of(path, root):
            pattern = rule.broken_by(imp.module)
            if pattern and (imp.line, pattern) not in seen:
                seen.add((imp.line, pattern))
                found.append(f"{imp.where(root)}: imports {imp.module} (forbidden: {pattern})")
    return found


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_layer_rule(rule: Rule) -> None:
    assert (ROOT / rule.folder).is_dir(), f"rule {rule.name}: no folder {rule.folder}"
    broken = violations(rule)
    assert not broken, (
        f"layer rule '{rule.name}' broken ({rule.folder}/ must not import "
        f"{', '.join(rule.forbidden)}): {rule.why}.\n" + "\n".join(broken)
    )


def test_every_package_has_rules() -> None:
    """A new top-level package needs its place in the rules and in docs/architecture.md."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - UNGOVERNED
    assert packages == set(PACKAGES), "add the new package's layer rules here and in the docs"
    folders = {rule.folder for rule in RULES}
    assert {"orchestration_defs/language", "baton", "agent_resources", "sensors"} <= folders


# The scanner itself: every form of import is seen ---------------------------------------


SAMPLE = """
from __future__ import annotations
import importlib
from typing import TYPE_CHECKING
import sensors.approvals as sa
from orchestration_defs import compiler
from . import sibling
from ..compiler.job import build_job
if TYPE_CHECKING:
    from dagster import RunRequest
def later():
    import sqlalchemy.orm
    return importlib.import_module("agent_resources.echo"), __import__("dagster_graphql")
"""


def test_the_scanner_sees_every_form_of_import(tmp_path: Path) -> None:
    module = tmp_path / "orchestration_defs" / "language" / "sample.py"
    module.parent.mkdir(parents=True)
    module.write_text(SAMPLE)
    seen = {(imp.line, imp.module) for imp in imports_of(module, tmp_path)}
    assert {
        (5, "sensors.approvals"),
        (6, "orchestration_defs.compiler"),
        (7, "orchestration_defs.language.sibling"),
        (8, "orchestration_defs.compiler.job"),
        (10, "dagster.RunRequest"),
        (12, "sqlalchemy.orm"),
        (13, "agent_resources.echo"),
        (13, "dagster_graphql"),
    } <= seen
    language = next(r for r in RULES if r.name == "language-stands-alone")
    broken = violations(language, tmp_path)
    lines = {line.split(": ")[0] for line in broken}
    assert lines == {f"orchestration_defs/language/sample.py:{n}" for n in (5, 6, 8, 10, 12, 13)}
    assert any("imports dagster_graphql (forbidden: dagster*)" in line for line in broken)


def test_a_relative_import_in_a_package_init_starts_from_that_package(tmp_path: Path) -> None:
    init = tmp_path / "sensors" / "__init__.py"
    init.parent.mkdir()
    init.write_text("from .approvals import x\nfrom .. import agent_resources\n")
    modules = [imp.module for imp in imports_of(init, tmp_path)]
    assert modules == ["sensors.approvals", "sensors.approvals.x", "agent_resources"]
