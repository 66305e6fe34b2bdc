"""Checking the inputs given at launch against the definition's typed parameters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from orchestration_defs.language.models import InputSpec, matches_type


class InputError(ValueError):
    """Inputs that do not fit the definition; ``problems`` names each input."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def resolve_inputs(specs: Mapping[str, InputSpec], given: Mapping[str, Any]) -> dict[str, Any]:
    """The full input values: ``given`` checked, defaults filled in.

    Raises:
        InputError: an input is missing, unknown, of the wrong type or not allowed.
    """
    problems = [f"unknown input '{name}'" for name in given if name not in specs]
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in given and given[name] is not None:
            problem = _check(name, spec, given[name])
            if problem:
                problems.append(problem)
            values[name] = given[name]
        elif spec.required:
            problems.append(f"missing required input '{name}' ({spec.type})")
        else:
            values[name] = spec.default
    if problems:
        raise InputError(problems)
    return values


def _check(name: str, spec: InputSpec, value: Any) -> str | None:
    if spec.type == "number" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not matches_type(value, spec.type):
        return f"input '{name}' must be of type {spec.type}, got {type(value).__name__}"
    if spec.enum is not None and value not in spec.enum:
        return f"input '{name}' must be one of {spec.enum}, got {value!r}"
    if spec.pattern is not None and not re.search(spec.pattern, value):
        return f"input '{name}' must match pattern {spec.pattern!r}, got {value!r}"
    return None
