"""Loading definition files and library folders."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from orchestration_defs.language.children import DEFAULT_MAX_DEPTH, check_children
from orchestration_defs.language.errors import SpecError
from orchestration_defs.language.models import OrchestrationSpec
from orchestration_defs.language.validate import validate_document
from orchestration_defs.language.yaml_loader import Positions, YamlProblem, load_yaml, read_text

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedDefinition:
    """A valid definition with where it came from and a checksum of its content."""

    spec: OrchestrationSpec
    path: Path
    checksum: str
    # Where each key is in the file, for the checks across files (children.py).
    positions: Positions | None = field(default=None, compare=False, repr=False)

    @property
    def source(self) -> str:
        return str(self.path)


def spec_checksum(spec: OrchestrationSpec) -> str:
    """SHA-256 of the canonical JSON of a spec: comments and layout do not change it."""
    canonical = json.dumps(spec.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_text(
    text: str, *, source: str, known_agents: Collection[str] | None
) -> tuple[OrchestrationSpec | None, list[SpecError]]:
    """Parse and check one document given as text (alone: its children are not checked)."""
    spec, errors, _ = _load_text(text, source=source, known_agents=known_agents)
    return spec, errors


def _load_text(
    text: str, *, source: str, known_agents: Collection[str] | None
) -> tuple[OrchestrationSpec | None, list[SpecError], Positions | None]:
    try:
        data, positions, problems = load_yaml(text)
    except YamlProblem as exc:
        return None, [SpecError(source, exc.line, exc.column, "", exc.message)], None
    spec, errors = validate_document(data, positions, source=source, known_agents=known_agents)
    errors += [SpecError(source, p.line, p.column, "", p.message) for p in problems]
    errors.sort(key=lambda e: (e.line or 0, e.column or 0))
    return (spec if not errors else None), errors, positions


def load_file(
    path: Path, *, known_agents: Collection[str] | None
) -> tuple[LoadedDefinition | None, list[SpecError]]:
    """Parse and check one file; one over the size limit is refused without being read."""
    try:
        text = read_text(path)
    except YamlProblem as exc:
        return None, [SpecError(str(path), None, None, "", exc.message)]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [SpecError(str(path), None, None, "", f"cannot read file: {exc}")]
    spec, errors, positions = _load_text(text, source=str(path), known_agents=known_agents)
    if spec is None:
        return None, errors
    return LoadedDefinition(spec, path, spec_checksum(spec), positions), errors


def definition_files(paths: Iterable[Path]) -> tuple[list[Path], list[SpecError]]:
    """The YAML files named or found (recursively, sorted) under the given paths."""
    files: list[Path] = []
    errors: list[SpecError] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            errors.append(SpecError(str(path), None, None, "", "no such file or folder"))
    return files, errors


def load_library(
    paths: Iterable[Path],
    *,
    known_agents: Collection[str] | None,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> tuple[list[LoadedDefinition], list[SpecError]]:
    """Every definition under ``paths`` and every problem, including clashes between files
    and orchestration steps whose child is missing, does not fit, or closes a cycle."""
    files, errors = definition_files(paths)
    loaded: list[LoadedDefinition] = []
    for file in files:
        definition, file_errors = load_file(file, known_agents=known_agents)
        errors.extend(file_errors)
        if definition is not None:
            loaded.append(definition)
    errors.extend(_clashes(loaded))
    bad = {e.source for e in errors}
    errors.extend(check_children([d for d in loaded if d.source not in bad], max_depth=max_depth))
    return loaded, errors


def _clashes(loaded: list[LoadedDefinition]) -> list[SpecError]:
    errors: list[SpecError] = []
    seen: dict[tuple[str, str, int], LoadedDefinition] = {}
    jobs: dict[str, LoadedDefinition] = {}
    for item in loaded:
        spec = item.spec
        key = (spec.organization, spec.slug, spec.version)
        if key in seen:
            errors.append(
                SpecError(
                    str(item.path),
                    1,
                    1,
                    "version",
                    f"'{spec.slug}' version {spec.version} is also defined in {seen[key].path}",
                )
            )
        seen.setdefault(key, item)
        other = jobs.get(spec.job_name)
        if other is not None and other.spec.slug == spec.slug:
            if other.spec.organization != spec.organization:
                # One code location has one job per slug, so an organization cannot share it.
                errors.append(
                    SpecError(
                        str(item.path),
                        1,
                        1,
                        "organization",
                        f"slug '{spec.slug}' is also used by organization "
                        f"'{other.spec.organization}' in {other.path}; slugs are unique "
                        "across organizations (each slug is one Dagster job)",
                    )
                )
        elif other is not None:
            errors.append(
                SpecError(
                    str(item.path),
                    1,
                    1,
                    "slug",
                    f"slug '{spec.slug}' gives the same job name as '{other.spec.slug}' "
                    f"in {other.path}",
                )
            )
        jobs.setdefault(spec.job_name, item)
    return errors


def latest_versions(loaded: Iterable[LoadedDefinition]) -> list[LoadedDefinition]:
    """The newest version of each slug, in slug order: these become the jobs."""
    newest: dict[str, LoadedDefinition] = {}
    for item in loaded:
        current = newest.get(item.spec.slug)
        if current is None or item.spec.version > current.spec.version:
            newest[item.spec.slug] = item
    return [newest[slug] for slug in sorted(newest)]
