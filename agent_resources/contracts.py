"""Static checks of a step's ``with`` against its agent's input model, for the validator.

Values that contain a template are only known at run time and are not checked; everything
else is: unknown keys (when the model forbids them), missing required keys, literal values of
the wrong type.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from agent_resources.catalog import AgentEntry, agent_catalog
from agent_resources.types import implementation_class
from orchestration_defs.language.templates import is_template, walk_strings
from orchestration_defs.language.validate import AgentInputCheck

Problems = list[tuple[tuple[str | int, ...], str]]


def _templated(value: Any) -> bool:
    return any(is_template(text) for _, text in walk_strings(value))


def check_input(model: type[BaseModel], value: Any) -> Problems:
    """Problems of a raw ``with`` value for ``model``."""
    if _templated(value) and not isinstance(value, dict):
        return []
    value = {} if value is None else value
    if not isinstance(value, dict):
        return [((), f"expected a mapping, got {type(value).__name__}")]
    fields = {f.alias or name: f for name, f in model.model_fields.items()}
    problems: Problems = []
    if model.model_config.get("extra") == "forbid":
        problems += [((key,), f"unknown input '{key}'") for key in value if key not in fields]
    for name, field in fields.items():
        if field.is_required() and name not in value:
            problems.append(((), f"missing required input '{name}'"))
        elif name in value and not _templated(value[name]):
            try:
                TypeAdapter(field.annotation or Any).validate_python(value[name])
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]["msg"]
                problems.append(((name,), f"input '{name}': {first}"))
    return problems


def _checker(entry: AgentEntry) -> AgentInputCheck | None:
    model = implementation_class(entry.type).input_model_for(entry)
    if model is None:
        return None
    return lambda value: check_input(model, value)


def agent_input_checks() -> dict[str, AgentInputCheck | None]:
    """Every catalog agent with its input check (None: the agent accepts any input)."""
    return {slug: _checker(entry) for slug, entry in agent_catalog().items()}
