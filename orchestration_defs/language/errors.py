"""Errors that point at a place in a definition file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpecError:
    """One problem in a definition: where it is, which field, and what was expected."""

    source: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class SpecErrors(Exception):
    """All the problems found in one or more definitions, reported together."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))
