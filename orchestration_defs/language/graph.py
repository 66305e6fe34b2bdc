"""The step graph: dependencies from ``needs`` and template references, and cycle finding."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from orchestration_defs.language.models import OrchestrationSpec, StepSpec
from orchestration_defs.language.templates import (
    is_template,
    references,
    uses_whole_steps,
    walk_strings,
)


def template_strings(step: Mapping[str, Any]) -> list[tuple[tuple, str]]:
    """The template strings of a raw or dumped step, with their paths inside it."""
    found = [(("with", *path), s) for path, s in walk_strings(step.get("with"))]
    checkpoint = step.get("checkpoint")
    if isinstance(checkpoint, dict):
        for key in ("prompt", "show"):
            found += [(("checkpoint", key, *p), s) for p, s in walk_strings(checkpoint.get(key))]
    when = step.get("when")
    if isinstance(when, str):
        found.append((("when",), when))
    found += [(("for_each", *p), s) for p, s in walk_strings(step.get("for_each"))]
    return [(path, s) for path, s in found if is_template(s)]


def step_dependencies(step: StepSpec) -> list[str]:
    """The steps ``step`` depends on, explicit needs first, in a stable order."""
    deps: list[str] = list(dict.fromkeys(step.needs))
    raw = step.model_dump(by_alias=True)
    for _, text in template_strings(raw):
        for ref in sorted(references(text).steps):
            if ref not in deps:
                deps.append(ref)
    return deps


def finish_dependencies(spec: OrchestrationSpec) -> list[str]:
    """The steps the finish op takes results from, in definition order: the last steps (every
    other step comes before one of them) and the steps the outputs name. All steps when an
    output template reads ``steps`` as a whole.

    Fewer inputs matter: Dagster writes two events for each input an op loads.
    """
    texts = [text for _, text in walk_strings(spec.outputs) if is_template(text)]
    if any(uses_whole_steps(text) for text in texts):
        return [step.id for step in spec.steps]
    named = {ref for text in texts for ref in references(text).steps}
    depended = {dep for step in spec.steps for dep in step_dependencies(step)}
    return [step.id for step in spec.steps if step.id in named or step.id not in depended]


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Each distinct cycle as a path that ends where it starts, e.g. ``[a, b, a]``."""
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, ()):
            if dep not in graph:
                continue
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep) :], dep]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    cycles.append(cycle)
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node)
    return cycles


def topological_order(spec: OrchestrationSpec) -> list[str]:
    """Step ids so that every step comes after its dependencies (file order breaks ties)."""
    deps = {step.id: step_dependencies(step) for step in spec.steps}
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(deps):
        progressed = False
        for step in spec.steps:
            if step.id not in placed and all(d in placed for d in deps[step.id]):
                order.append(step.id)
                placed.add(step.id)
                progressed = True
        if not progressed:
            raise ValueError("the step graph has a cycle")
    return order


def ancestors(graph: Mapping[str, Iterable[str]], node: str) -> set[str]:
    """Every step ``node`` depends on, directly or not."""
    seen: set[str] = set()
    stack = list(graph.get(node, ()))
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(graph.get(current, ()))
    return seen


def descendants(spec: OrchestrationSpec, step_id: str) -> list[str]:
    """``step_id`` and every step that depends on it, in definition order."""
    graph = {s.id: step_dependencies(s) for s in spec.steps}
    return [s.id for s in spec.steps if s.id == step_id or step_id in ancestors(graph, s.id)]


def retry_step_of(spec: OrchestrationSpec, step: StepSpec) -> str | None:
    """The step a checkpoint's retry re-runs: ``retry_step``, else its only dependency."""
    if step.checkpoint is None:
        return None
    if step.checkpoint.retry_step:
        return step.checkpoint.retry_step
    deps = step_dependencies(step)
    return deps[0] if len(deps) == 1 else None
