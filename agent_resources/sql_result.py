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


def fetch_rows(cursor: Cursor, max_rows: int) -> QueryResult:
    """At most ``max_rows`` rows of the cursor's result (``truncated`` says more matched)."""
    if cursor.description is None:
        return QueryResult([], [], False, affected_rows=cursor.rowcount)
    columns = [str(column[0]) for column in cursor.description]
    fetched = cursor.fetchmany(max_rows + 1)
    rows = [{c: json_safe(v) for c, v in zip(columns, row, strict=True)} for row in fetched]
    return QueryResult(columns, rows[:max_rows], len(rows) > max_rows)


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
