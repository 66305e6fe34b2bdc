"""Checking a parsed document: the models, then the step graph, all problems at once.

The graph checks run on the raw data, so a file with a wrong type in one step still gets its
cycles and unknown references reported in the same pass.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from pydantic import ValidationError

from orchestration_defs.language.errors import SpecError
from orchestration_defs.language.graph import ancestors, find_cycles, template_strings
from orchestration_defs.language.models import COMPENSATE_ROOT, OrchestrationSpec
from orchestration_defs.language.templates import (
    TemplateError,
    is_template,
    references,
    walk_strings,
)
from orchestration_defs.language.yaml_loader import Path, Positions

# What the ``with`` of a step with ``for_each`` sees of the current child.
LOOP_NAMES = frozenset({"item", "index"})

# An agent's check of a step's `with`: (path inside `with`, message) for each problem.
AgentInputCheck = Callable[[Any], list[tuple[tuple[str | int, ...], str]]]


class _Reporter:
    def __init__(self, source: str, positions: Positions) -> None:
        self.source = source
        self.positions = positions
        self.errors: list[SpecError] = []

    def add(self, path: Path, message: str) -> None:
        line, column = self.positions.find(path)
        field = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path)
        self.errors.append(SpecError(self.source, line, column, field.replace(".[", "["), message))


def validate_document(
    data: Any, positions: Positions, *, source: str, known_agents: Collection[str] | None
) -> tuple[OrchestrationSpec | None, list[SpecError]]:
    """The spec if ``data`` is a valid orchestration, and every problem found in it."""
    report = _Reporter(source, positions)
    if not isinstance(data, dict):
        report.add((), "expected a mapping with slug, name, version and steps")
        return None, report.errors
    spec = _validate_models(data, report)
    _check_graph(data, report, known_agents)
    return (spec if not report.errors else None), report.errors


def _validate_models(data: dict[str, Any], report: _Reporter) -> OrchestrationSpec | None:
    try:
        return OrchestrationSpec.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            report.add(tuple(error["loc"]), _describe(error))
        return None


def _describe(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if "input" in error and kind not in ("value_error", "assertion_error"):
        message += f" (got {error['input']!r})"
    return message


def _raw_steps(data: dict[str, Any]) -> list[tuple[int, dict[str, Any], str]]:
    steps = data.get("steps")
    if not isinstance(steps, list):
        return []
    return [
        (index, step, step["id"])
        for index, step in enumerate(steps)
        if isinstance(step, dict) and isinstance(step.get("id"), str)
    ]


def _check_graph(
    data: dict[str, Any], report: _Reporter, known_agents: Collection[str] | None
) -> None:
    steps = _raw_steps(data)
    raw_inputs = data.get("inputs")
    inputs: dict[str, Any] = raw_inputs if isinstance(raw_inputs, dict) else {}
    ids: dict[str, int] = {}
    for index, _step, step_id in steps:
        if step_id in ids:
            report.add(("steps", index, "id"), f"duplicate step id '{step_id}'")
        ids.setdefault(step_id, index)
    graph: dict[str, list[str]] = {}
    for index, step, step_id in steps:
        deps = graph.setdefault(step_id, [])
        base: Path = ("steps", index)
        _check_agent(step, base, report, known_agents)
        needs = step.get("needs")
        for n, need in enumerate(needs if isinstance(needs, list) else []):
            if isinstance(need, str):
                if need not in ids:
                    report.add((*base, "needs", n), f"unknown step '{need}' in needs")
                deps.append(need)
        loop_names = _loop_names(step)
        for path, text in template_strings(step):
            extra = loop_names if path[0] == "with" else frozenset()
            deps.extend(_check_template(text, (*base, *path), ids, inputs, report, extra))
        _check_compensate(step, base, ids, inputs, report, known_agents)
    _check_outputs(data, ids, inputs, report)
    for index, step, _step_id in steps:
        _check_retry_step(step, ("steps", index, "checkpoint"), graph, report)
    for cycle in find_cycles(graph):
        index = ids[cycle[0]]
        report.add(("steps", index), "dependency cycle: " + " -> ".join(cycle))


def _check_agent(
    step: dict[str, Any], base: Path, report: _Reporter, known_agents: Collection[str] | None
) -> None:
    """The agent must be known; with a mapping of checks, its ``with`` must fit its input."""
    agent = step.get("agent")
    if known_agents is None or not isinstance(agent, str):
        return
    if agent not in known_agents:
        known = ", ".join(sorted(known_agents)) or "none"
        report.add((*base, "agent"), f"unknown agent '{agent}' (known agents: {known})")
        return
    check = known_agents.get(agent) if isinstance(known_agents, Mapping) else None
    if check is not None:
        for path, message in check(step.get("with")):
            report.add((*base, "with", *path), f"agent '{agent}': {message}")


def _check_compensate(
    step: dict[str, Any],
    base: Path,
    ids: dict[str, int],
    inputs: dict[str, Any],
    report: _Reporter,
    known_agents: Collection[str] | None,
) -> None:
    """A compensation's agent must be known and its ``with`` fit it and render: it may use
    ``step`` (the compensated step) besides inputs, steps and run. Its references to steps
    are no dependencies: it runs after the run ended."""
    compensate = step.get("compensate")
    if not isinstance(compensate, dict):
        return
    where: Path = (*base, "compensate")
    _check_agent(compensate, where, report, known_agents)
    for path, text in walk_strings(compensate.get("with"), ("with",)):
        if is_template(text):
            roots = frozenset({COMPENSATE_ROOT})
            _check_template(text, (*where, *path), ids, inputs, report, roots)


def _check_retry_step(
    step: dict[str, Any], base: Path, graph: dict[str, list[str]], report: _Reporter
) -> None:
    """A checkpoint that offers retry must know which upstream step re-runs."""
    checkpoint = step.get("checkpoint")
    if not isinstance(checkpoint, dict):
        return
    decisions = checkpoint.get("decisions", ["retry"])
    if not isinstance(decisions, list) or "retry" not in decisions:
        return
    named = checkpoint.get("retry_step")
    upstream = ancestors(graph, step["id"])
    if isinstance(named, str):
        if named not in upstream:
            report.add(
                (*base, "retry_step"),
                f"retry_step '{named}' is not a step this checkpoint depends on",
            )
    elif len(set(graph.get(step["id"], []))) != 1:
        report.add(
            base,
            "a checkpoint offering 'retry' needs 'retry_step' when it does not "
            "depend on exactly one step",
        )


def _loop_names(step: dict[str, Any]) -> frozenset[str]:
    """Names a step's ``with`` may use besides inputs, steps and run: ``item`` and ``index``
    in an orchestration step with ``for_each``."""
    if step.get("orchestration") is not None and step.get("for_each") is not None:
        return LOOP_NAMES
    return frozenset()


def _check_template(
    text: str,
    path: Path,
    ids: dict[str, int],
    inputs: dict[str, Any],
    report: _Reporter,
    extra_roots: frozenset[str] = frozenset(),
) -> list[str]:
    try:
        refs = references(text)
    except TemplateError as exc:
        report.add(path, str(exc))
        return []
    for name in sorted(refs.unknown_roots - extra_roots):
        if name in LOOP_NAMES:
            report.add(path, f"'{name}' is defined only in the 'with' of a step with for_each")
            continue
        allowed = (
            "inputs, steps, run or step"
            if COMPENSATE_ROOT in extra_roots
            else ("inputs, steps or run")
        )
        report.add(path, f"unknown name '{name}' in template (use {allowed})")
    for name in sorted(refs.inputs - set(inputs)):
        report.add(path, f"unknown input '{name}' in template")
    for name in sorted(refs.steps - set(ids)):
        report.add(path, f"unknown step '{name}' in template")
    return sorted(refs.steps & set(ids))


def _check_outputs(
    data: dict[str, Any], ids: dict[str, int], inputs: dict[str, Any], report: _Reporter
) -> None:
    outputs = data.get("outputs")
    if not isinstance(outputs, dict):
        return
    for path, text in walk_strings(outputs, ("outputs",)):
        if is_template(text):
            _check_template(text, path, ids, inputs, report)
