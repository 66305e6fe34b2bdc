"""Checking the inputs given at launch against the definition's typed parameters.

Every launch passes here (the API, ``baton run``, the Dagster launchpad's start op, webhook
triggers), so this is where an input's text and size are bounded too: valid text without NUL
at any depth, keys included, and strings, lists, nesting and the whole within ``limits``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from orchestration_defs.language.models import InputSpec, matches_type
from orchestration_defs.language.values import (
    ValueLimits,
    ValueProblem,
    check_text,
    check_value,
    key_path,
    serialized_size,
    shown,
)

DEFAULT_LIMITS = ValueLimits()


class InputError(ValueError):
    """Inputs that do not fit the definition; ``problems`` names each input.

    ``fields`` holds, for each problem, the path of the offending value (``inputs.topic``,
    ``inputs.topic[2].name``), as the API reports it.
    """

    def __init__(self, problems: list[str], fields: list[str] | None = None) -> None:
        self.problems = problems
        self.fields = fields if fields is not None else ["inputs"] * len(problems)
        super().__init__("; ".join(problems))


class _Problems:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.fields: list[str] = []

    def add(self, message: str, field: str) -> None:
        self.messages.append(message)
        self.fields.append(field)


def resolve_inputs(
    specs: Mapping[str, InputSpec],
    given: Mapping[str, Any],
    limits: ValueLimits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """The full input values: ``given`` checked, defaults filled in.

    Args:
        specs: the definition's inputs.
        given: the values of the launch.
        limits: bounds on each value; ``limits.max_total_bytes`` bounds ``given`` as a whole.

    Raises:
        InputError: an input is missing, unknown, of the wrong type, not allowed, not valid
            text or too large.
    """
    problems = _Problems()
    for name in given:
        if name not in specs:
            _unknown(problems, name)
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in given and given[name] is not None:
            problem = _check(name, spec, given[name], limits)
            if problem:
                problems.add(*problem)
            values[name] = given[name]
        elif spec.required:
            problems.add(f"missing required input '{name}' ({spec.type})", f"inputs.{name}")
        else:
            values[name] = spec.default
    if not problems.messages:
        _check_total(problems, given, limits)
    if problems.messages:
        raise InputError(problems.messages, problems.fields)
    return values


def _unknown(problems: _Problems, name: Any) -> None:
    if not isinstance(name, str):
        problems.add(f"input names must be strings, got {type(name).__name__}", "inputs")
        return
    field = key_path("inputs", name)
    try:
        check_text(name, field, max_chars=100)
    except ValueProblem as exc:
        problems.add(f"input name {field}: {exc.message}", field)
        return
    problems.add(f"unknown input '{shown(name)}'", field)


def _check(name: str, spec: InputSpec, value: Any, limits: ValueLimits) -> tuple[str, str] | None:
    field = f"inputs.{name}"
    try:
        check_value(value, field, _per_value(limits))
    except ValueProblem as exc:
        return f"input '{name}' at {exc.field}: {exc.message}", exc.field
    if spec.type == "number" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not matches_type(value, spec.type):
        return f"input '{name}' must be of type {spec.type}, got {type(value).__name__}", field
    if spec.enum is not None and value not in spec.enum:
        return f"input '{name}' must be one of {spec.enum}, got {_repr(value)}", field
    if spec.pattern is not None and not re.search(spec.pattern, value):
        return f"input '{name}' must match pattern {spec.pattern!r}, got {_repr(value)}", field
    return None


def _per_value(limits: ValueLimits) -> ValueLimits:
    # The total applies to all inputs together (below), not to each one.
    return ValueLimits(limits.max_string_chars, limits.max_items, limits.max_depth, None)


def _check_total(problems: _Problems, given: Mapping[str, Any], limits: ValueLimits) -> None:
    if limits.max_total_bytes is None:
        return
    size = serialized_size(dict(given))
    if size > limits.max_total_bytes:
        problems.add(
            f"the inputs are {size} bytes as JSON; at most {limits.max_total_bytes} bytes",
            "inputs",
        )


def _repr(value: Any) -> str:
    # The value goes back in an error message: bounded, and only what repr escapes.
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."
