"""Checks across definitions: the children an orchestration step runs.

A file on its own cannot tell whether ``orchestration: kpi-tracking`` names a real library
entry, whether its ``with`` fits that entry's inputs, or whether two files call each other.
These checks run over a whole library, after each file was checked alone, and point at the
step's line like every other error.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from orchestration_defs.language.errors import SpecError
from orchestration_defs.language.graph import find_cycles
from orchestration_defs.language.models import OrchestrationSpec, StepSpec, matches_type
from orchestration_defs.language.templates import is_template, walk_strings
from orchestration_defs.language.yaml_loader import Path, Positions

# Levels of children below a root run, unless the caller passes the setting
# (BATON_CHILDREN__MAX_DEPTH).
DEFAULT_MAX_DEPTH = 5


class Definition(Protocol):
    """What these checks need of a loaded file (``library.LoadedDefinition``)."""

    @property
    def spec(self) -> OrchestrationSpec: ...

    @property
    def source(self) -> str: ...

    @property
    def positions(self) -> Positions | None: ...


@dataclass(frozen=True)
class _Call:
    """One orchestration step: who calls which child, where."""

    parent: Definition
    index: int
    step: StepSpec

    def error(self, path: Path, message: str) -> SpecError:
        full: Path = ("steps", self.index, *path)
        positions = self.parent.positions or Positions()
        line, column = positions.find(full)
        field = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in full)
        return SpecError(self.parent.source, line, column, field.replace(".[", "["), message)


def check_children(
    definitions: Sequence[Definition], *, max_depth: int = DEFAULT_MAX_DEPTH
) -> list[SpecError]:
    """Every problem of every orchestration step, until no new file turns invalid.

    A file found invalid here is left out of the next round, so a parent of an invalid child
    is reported too (its child would not load).
    """
    errors: list[SpecError] = []
    valid = list(definitions)
    while True:
        found = _check_round(valid, max_depth)
        if not found:
            return sorted(errors, key=lambda e: (e.source, e.line or 0, e.column or 0))
        errors.extend(found)
        bad = {e.source for e in found}
        valid = [d for d in valid if d.source not in bad]


def _check_round(definitions: Sequence[Definition], max_depth: int) -> list[SpecError]:
    library = _by_slug(definitions)
    calls = [
        _Call(d, i, step)
        for d in definitions
        for i, step in enumerate(d.spec.steps)
        if step.orchestration is not None
    ]
    errors: list[SpecError] = []
    for call in calls:
        errors.extend(_check_call(call, library))
    if errors:
        return errors
    errors.extend(_check_cycles(calls))
    if errors:
        return errors
    return _check_depth(calls, max_depth)


def _by_slug(definitions: Sequence[Definition]) -> dict[tuple[str, str], dict[int, Definition]]:
    library: dict[tuple[str, str], dict[int, Definition]] = {}
    for d in definitions:
        library.setdefault((d.spec.organization, d.spec.slug), {})[d.spec.version] = d
    return library


def _check_call(
    call: _Call, library: Mapping[tuple[str, str], dict[int, Definition]]
) -> list[SpecError]:
    step = call.step
    slug = step.orchestration or ""
    versions = library.get((call.parent.spec.organization, slug))
    if not versions:
        known = sorted(s for org, s in library if org == call.parent.spec.organization)
        return [
            call.error(
                ("orchestration",),
                f"unknown orchestration '{slug}' (library: {', '.join(known) or 'none'})",
            )
        ]
    if step.version is not None and step.version not in versions:
        held = ", ".join(str(v) for v in sorted(versions))
        return [
            call.error(
                ("version",),
                f"orchestration '{slug}' has no version {step.version} "
                f"(versions in the library: {held})",
            )
        ]
    child = versions[step.version if step.version is not None else max(versions)].spec
    return _check_inputs(call, child)


def _check_inputs(call: _Call, child: OrchestrationSpec) -> list[SpecError]:
    given = call.step.with_
    label = f"orchestration '{child.slug}' v{child.version}"
    if given is None:
        given = {}
    if not isinstance(given, dict):
        return [call.error(("with",), f"{label}: 'with' must map the child's input names")]
    errors = []
    declared = ", ".join(sorted(child.inputs)) or "none"
    for name, value in given.items():
        spec = child.inputs.get(name)
        if spec is None:
            errors.append(
                call.error(
                    ("with", name), f"{label} has no input '{name}' (declared inputs: {declared})"
                )
            )
        elif not _templated(value) and value is not None and not _fits(value, spec.type):
            errors.append(
                call.error(
                    ("with", name),
                    f"{label}: input '{name}' must be of type {spec.type}, "
                    f"got {type(value).__name__}",
                )
            )
    for name, spec in child.inputs.items():
        if spec.required and name not in given:
            errors.append(
                call.error(("with",), f"{label}: required input '{name}' ({spec.type}) is not set")
            )
    return errors


def _templated(value: Any) -> bool:
    """Whether a value holds a template anywhere (it is checked once rendered, at run time)."""
    return any(is_template(s) for _, s in walk_strings(value))


def _fits(value: Any, type_: str) -> bool:
    if type_ == "number" and isinstance(value, int) and not isinstance(value, bool):
        return True
    return matches_type(value, type_)


def _graph(calls: Sequence[_Call]) -> dict[str, list[str]]:
    graph: dict[str, list[str]] = {}
    for call in calls:
        graph.setdefault(call.parent.spec.slug, []).append(call.step.orchestration or "")
    for call in calls:
        graph.setdefault(call.step.orchestration or "", [])
    return graph


def _check_cycles(calls: Sequence[_Call]) -> list[SpecError]:
    errors = []
    for cycle in find_cycles(_graph(calls)):
        chain = " -> ".join(cycle)
        for caller, callee in itertools.pairwise(cycle):
            for call in calls:
                if call.parent.spec.slug == caller and call.step.orchestration == callee:
                    errors.append(call.error(("orchestration",), f"orchestration cycle: {chain}"))
    return errors


def _check_depth(calls: Sequence[_Call], max_depth: int) -> list[SpecError]:
    graph = _graph(calls)
    chains: dict[str, list[str]] = {}

    def deepest(slug: str) -> list[str]:
        """The longest chain of children starting at ``slug`` (the graph has no cycle)."""
        if slug not in chains:
            below = [deepest(child) for child in graph.get(slug, [])]
            chains[slug] = [slug, *max(below, key=len, default=[])]
        return chains[slug]

    errors = []
    for call in calls:
        chain = [call.parent.spec.slug, *deepest(call.step.orchestration or "")]
        if len(chain) - 1 > max_depth:
            errors.append(
                call.error(
                    ("orchestration",),
                    f"nesting too deep: {' -> '.join(chain)} is {len(chain) - 1} levels of "
                    f"children; the limit is {max_depth} (BATON_CHILDREN__MAX_DEPTH)",
                )
            )
    return errors
