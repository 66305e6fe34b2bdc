"""What a tool query gives back: JSON-safe rows read from a DB-API cursor, and its deadline."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Any, Protocol

DEFAULT_TIMEOUT_SECONDS = 30.0


class Cursor(Protocol):
    """The part of a DB-API cursor a result is read from (sqlite3's and psycopg's)."""

    @property
    def description(self) -> Any: ...

    @property
    def rowcount(self) -> int: ...

    def fetchmany(self, size: int) -> list[Any]: ...


@dataclass
class QueryResult:
    """What a query gave back, values already JSON-safe."""

    columns: list[str]
    rows: list[dict[str, Any]]
    truncated: bool
    affected_rows: int | None = None


@dataclass
class Deadline:
    """When the statement must have finished (monotonic clock)."""

    at: float
    hit: bool = field(default=False)

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        return cls(time.monotonic() + (DEFAULT_TIMEOUT_SECONDS if seconds is None else seconds))

    def remaining_ms(self) -> int:
        """Milliseconds left, at least 1 (0 would mean no timeout to PostgreSQL)."""
        return max(int((self.at - time.monotonic()) * 1000), 1)

    def passed(self) -> bool:
        self.hit = self.hit or time.monotonic() > self.at
        return self.hit

    def progress(self) -> int:
        """SQLite's progress handler: non-zero interrupts the statement."""
        return int(self.passed())


class ResultTooLarge(Exception):
    """The rows are bigger than the caller may take in (``max_bytes``)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the rows are larger than {max_bytes} bytes")
        self.max_bytes = max_bytes


# Rows fetched per round trip: few enough that a batch of rows each at the largest value the
# database allows stays small next to the byte budget's own check.
_BATCH = 50


def fetch_rows(cursor: Cursor, max_rows: int, max_bytes: int | None = None) -> QueryResult:
    """At most ``max_rows`` rows of the cursor's result (``truncated`` says more matched).

    Raises:
        ResultTooLarge: the rows read so far already hold more than ``max_bytes`` of values.
    """
    if cursor.description is None:
        return QueryResult([], [], False, affected_rows=cursor.rowcount)
    columns = [str(column[0]) for column in cursor.description]
    rows: list[dict[str, Any]] = []
    size = 0
    while len(rows) <= max_rows:
        batch = cursor.fetchmany(min(_BATCH, max_rows + 1 - len(rows)))
        if not batch:
            break
        for row in batch:
            size += sum(value_size(v) for v in row)
            if max_bytes is not None and size > max_bytes:
                raise ResultTooLarge(max_bytes)
            rows.append({c: json_safe(v) for c, v in zip(columns, row, strict=True)})
    return QueryResult(columns, rows[:max_rows], len(rows) > max_rows)


def value_size(value: Any) -> int:
    """About how many bytes a value takes as JSON (exact enough for a budget)."""
    if isinstance(value, str | bytes | bytearray):
        return len(value) * (2 if isinstance(value, bytes | bytearray) else 1)
    if isinstance(value, list | tuple):
        return sum(value_size(v) for v in value) + len(value)
    if isinstance(value, dict):
        return sum(len(str(k)) + value_size(v) for k, v in value.items())
    return 8


def json_safe(value: Any) -> Any:
    """A database value as JSON: Decimal to float, dates to ISO strings, bytes to hex."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float | Decimal):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, datetime | date | clock_time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return str(value)  # UUID, IP addresses, ranges and the like
