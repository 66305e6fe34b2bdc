"""The decision form: modifiable fields as form inputs, and the submitted form back to data.

Each modifiable field is prefilled with its current value as text. A field whose submitted
text equals that prefill is left out of the modifications, so an approver who changes nothing
records no change (the approvals service would otherwise store ``{from: x, to: x}``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestration_defs.language.values import JsonSyntaxError, ValueProblem, parse_json

FIELD_PREFIX = "mod__"
DECISIONS = ("continue", "retry", "abort")


class FormError(ValueError):
    """A form value that cannot be read; ``field`` names it as the API would."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class FieldInput:
    """One modifiable field as the page shows it."""

    name: str
    type: str
    text: str

    @property
    def input_name(self) -> str:
        return FIELD_PREFIX + self.name

    @property
    def multiline(self) -> bool:
        return self.type in ("array", "object") or "\n" in self.text or len(self.text) > 80


def as_text(value: Any, type_: str) -> str:
    """A value as the text of its form input (empty when absent)."""
    if value is None:
        return ""
    if type_ == "string" and isinstance(value, str):
        return value
    if type_ == "boolean" and isinstance(value, bool):
        return "true" if value else "false"
    if type_ in ("integer", "number") and not isinstance(value, bool | str):
        return str(value)
    return json.dumps(value, indent=2, ensure_ascii=False)


def field_inputs(modifiable: Mapping[str, str], current: Any) -> list[FieldInput]:
    """The form inputs of ``modifiable``, prefilled from ``current`` (the reviewed value)."""
    values = current if isinstance(current, dict) else {}
    return [
        FieldInput(name, type_, as_text(values.get(name), type_))
        for name, type_ in modifiable.items()
    ]


def _normalise(text: str) -> str:
    # Browsers submit textarea line breaks as CRLF.
    return text.replace("\r\n", "\n")


def parse_value(text: str, type_: str, name: str) -> Any:
    """The typed value of a field's submitted text.

    Raises:
        FormError: the text is not a value of ``type_`` (the field is named).
    """
    field = f"modifications.{name}"
    if type_ == "string":
        return text
    stripped = text.strip()
    if type_ == "boolean":
        if stripped not in ("true", "false"):
            raise FormError(f"field '{name}' must be true or false, got '{stripped}'", field)
        return stripped == "true"
    if type_ in ("integer", "number"):
        return _number(stripped, type_, name, field)
    try:
        value = parse_json(stripped, field=field)
    except JsonSyntaxError as exc:
        raise FormError(f"field '{name}' must be JSON ({type_}): {exc.message}", field) from exc
    except ValueProblem as exc:
        raise FormError(f"field '{name}' at {exc.field}: {exc.message}", exc.field) from exc
    expected = list if type_ == "array" else dict
    if not isinstance(value, expected):
        raise FormError(f"field '{name}' must be a JSON {type_}", field)
    return value


def _number(text: str, type_: str, name: str, field: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    if type_ == "integer":
        raise FormError(f"field '{name}' must be an integer, got '{text}'", field)
    try:
        value = float(text)
    except ValueError:
        raise FormError(f"field '{name}' must be a number, got '{text}'", field) from None
    if not math.isfinite(value):
        raise FormError(f"field '{name}' must be a finite number, got '{text}'", field)
    return value


def modifications(
    form: Mapping[str, str], modifiable: Mapping[str, str], current: Any
) -> dict[str, Any]:
    """The fields the approver changed, typed.

    Raises:
        FormError: a changed field's text is not a value of its type.
    """
    changed: dict[str, Any] = {}
    for field in field_inputs(modifiable, current):
        submitted = form.get(field.input_name)
        if submitted is None or _normalise(submitted) == _normalise(field.text):
            continue
        changed[field.name] = parse_value(_normalise(submitted), field.type, field.name)
    return changed


def decision_of(form: Mapping[str, str]) -> str:
    """The chosen decision.

    Raises:
        FormError: none chosen, or not one of continue, retry, abort.
    """
    decision = (form.get("decision") or "").strip()
    if decision not in DECISIONS:
        raise FormError(
            f"decision must be one of {', '.join(DECISIONS)}, got '{decision}'", "decision"
        )
    return decision
