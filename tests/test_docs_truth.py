"""What the README and the docs say about commands and routes is checked against the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from baton.api.app import create_app
from tests.baton.api.world import api_settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A route as the docs write it: `/api/v1/approvals/<approval id>/decision`, `/ui/approvals`.
ROUTE = re.compile(r"(?P<path>/(?:api/v1|ui)(?:/(?:<[^>]*>|[^\s`\"'?)<,]+))*)")


def _paths(routes: list[Any], prefix: str = "") -> list[str]:
    """Every path served, through included routers (FastAPI keeps them nested)."""
    paths = []
    for route in routes:
        context = getattr(route, "include_context", None)
        if context is not None:
            paths += _paths(route.original_router.routes, prefix + context.prefix)
        elif hasattr(route, "path"):
            paths.append(prefix + route.path)
    return paths


def _routes(tmp_path: Path) -> list[re.Pattern[str]]:
    app = create_app(api_settings(tmp_path, f"sqlite:///{tmp_path / 'baton.db'}"))
    return [
        re.compile(re.sub(r"\{[^}]+\}", "[^/]+", path) + "/?")
        for path in _paths(list(app.routes))
        if path.startswith(("/api/v1", "/ui"))
    ]


def _shown_routes() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for match in ROUTE.finditer(doc.read_text(encoding="utf-8")):
            path = match.group("path")
            if path.endswith(".py") or "::" in path or path == "/api/v1":  # a test, the prefix
                continue
            found.append((doc.name, re.sub(r"<[^>]*>|\{[^}]*\}", "x", path).rstrip(".,:")))
    return found


def test_every_route_the_docs_show_exists(tmp_path: Path) -> None:
    routes = _routes(tmp_path)
    shown = _shown_routes()
    assert len(shown) > 20
    missing = [(doc, p) for doc, p in shown if not any(r.fullmatch(p) for r in routes)]
    assert not missing, f"routes the docs show that the API does not serve: {missing}"


@pytest.mark.parametrize("doc", ["checkpoints.md", "api.md", "architecture.md"])
def test_no_doc_promises_the_api_for_later(doc: str) -> None:
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    assert not re.search(r"API (next|later|to come)|next issue", text), doc


def test_checkpoints_shows_every_way_to_decide() -> None:
    text = (ROOT / "docs" / "checkpoints.md").read_text(encoding="utf-8")
    deciding = text.split("## Deciding", 1)[1].split("\n## ", 1)[0]
    for way in ("/ui/approvals", "/api/v1/approvals/", "/decision", "baton approvals decide"):
        assert way in deciding, way


# Every command, option, make target, script and curl route of the docs' shell blocks is
# checked line by line by tests/docs/test_doc_commands.py; the marked blocks are run there.


# A file or folder of the project named in backquotes: `docs/api.md`, `bench/`, `.ci/run`.
PROJECT_PATH = re.compile(
    r"`(?P<path>\.?(?:docs|bench|deploy|tests|scripts|migrations|baton|sensors|agent_resources"
    r"|orchestration_defs|\.ci)/[\w./-]*)`"
)


def test_every_file_the_readme_names_exists() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    named = {m.group("path") for m in PROJECT_PATH.finditer(text)}
    # `baton/user`, `baton/run_id`: Dagster tags, not files.
    named = {p for p in named if not re.fullmatch(r"baton/[a-z_]+", p)}
    named |= {f"docs/{name}" for name in re.findall(r"`([\w-]+\.md)`", text)}
    bench_row = next(line for line in text.splitlines() if line.startswith("| `bench/` |"))
    named |= {f"bench/{name}" for name in re.findall(r"`(\w+\.py)`", bench_row)}
    assert len(named) > 20
    missing = sorted(p for p in named if not (ROOT / p.split("#")[0]).exists())
    assert not missing, f"README.md names files that do not exist: {missing}"


def test_every_make_target_the_readme_names_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w-]+):", makefile, re.MULTILINE))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", readme))
    assert {"up", "test", "demo"} <= named
    assert not named - targets, f"README.md names make targets that do not exist: {named - targets}"


def test_the_readme_lists_every_doc() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `docs/` |"))
    missing = [d.name for d in sorted((ROOT / "docs").glob("*.md")) if f"`{d.name}`" not in row]
    assert not missing, f"README.md's layout does not list {missing}"


def test_production_names_only_metrics_settings_and_files_that_exist() -> None:
    from baton.settings import Settings

    text = (ROOT / "docs" / "production.md").read_text(encoding="utf-8")
    source = (ROOT / "baton" / "api" / "metrics.py").read_text(encoding="utf-8")
    named = set(re.findall(r"\bbaton_[a-z_]+", text)) - {"baton_alembic_version"}  # a table
    metrics = {name.removesuffix("_total") for name in named}
    missing = sorted(m for m in metrics if f'"{m}"' not in source)
    assert not missing, f"docs/production.md names metrics /metrics does not serve: {missing}"
    unknown = []
    for name in set(re.findall(r"\bBATON_[A-Z_]+[A-Z]", text)):
        model: Any = Settings
        for part in name.removeprefix("BATON_").lower().split("__"):
            field = model.model_fields.get(part)
            if field is None:
                unknown.append(name)
                break
            model = field.annotation
    assert not unknown, f"docs/production.md names settings that do not exist: {sorted(unknown)}"
    paths = {m.group("path") for m in PROJECT_PATH.finditer(text)}
    assert not [p for p in paths if not (ROOT / p).exists()]
