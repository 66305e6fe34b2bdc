"""Running a checked query: pooled engines, read-only transactions, deadlines, JSON-safe rows."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from agent_resources.base import AgentError
from baton.secrets import Masker


@dataclass
class QueryResult:
    """What a query gave back, values already JSON-safe."""

    columns: list[str]
    rows: list[dict[str, Any]]
    truncated: bool
    affected_rows: int | None = None


@dataclass
class _Deadline:
    at: float | None
    hit: bool = field(default=False)

    def passed(self) -> bool:
        self.hit = self.hit or (self.at is not None and time.monotonic() > self.at)
        return self.hit

    def progress(self) -> int:
        """SQLite's progress handler: non-zero interrupts the statement."""
        return int(self.passed())


_MAX_ENGINES = 16
_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _new_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # A fresh connection per query: PRAGMA query_only never leaks to another use.
        return create_engine(parsed, poolclass=NullPool, hide_parameters=True)
    connect_args = {"connect_timeout": 10} if parsed.get_driver_name() == "psycopg2" else {}
    return create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=4,
        hide_parameters=True,
        connect_args=connect_args,
    )


def engine_for(url: str) -> Engine:
    """The shared engine for ``url`` (one per URL and process)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            if len(_ENGINES) >= _MAX_ENGINES:
                _ENGINES.pop(next(iter(_ENGINES))).dispose()
            engine = _ENGINES[url] = _new_engine(url)
        return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests; before a database is dropped)."""
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


def _begin(connection: Connection, read_only: bool, deadline: _Deadline) -> None:
    backend = connection.dialect.name
    if backend == "sqlite":
        if read_only:
            connection.exec_driver_sql("PRAGMA query_only=ON")
        raw = connection.connection.dbapi_connection
        raw.set_progress_handler(deadline.progress, 1000)  # type: ignore[union-attr]
    elif backend == "postgresql":
        if read_only:
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        if deadline.at is not None:
            ms = str(max(int((deadline.at - time.monotonic()) * 1000), 1))
            connection.execute(
                text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": ms}
            )
    elif read_only:
        raise AgentError(
            f"read-only queries run on SQLite and PostgreSQL only, not {backend}", kind="config"
        )


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _db_error(exc: DBAPIError, label: str, masker: Masker, deadline: _Deadline) -> AgentError:
    detail = masker.text(first_line(exc.orig or exc))
    code = str(getattr(exc.orig, "pgcode", None) or "")
    if code == "57014" or deadline.hit:
        return AgentError(f"{label} timed out: {detail}", kind="timeout")
    transient = code.startswith(("08", "53", "57P")) or code in ("40001", "40P01")
    if transient or exc.connection_invalidated or "database is locked" in detail:
        return AgentError(f"{label} failed (database unavailable): {detail}", kind="server")
    return AgentError(f"{label} failed: {detail}", kind="client")


def _connect(url: str, masker: Masker) -> Connection:
    try:
        return engine_for(url).connect()
    except ArgumentError as exc:
        detail = masker.text(first_line(exc))
        raise AgentError(f"not a usable database URL: {detail}", kind="config") from None
    except SQLAlchemyError as exc:
        detail = masker.text(first_line(getattr(exc, "orig", None) or exc))
        raise AgentError(f"cannot connect to the database: {detail}", kind="server") from None


def execute_query(
    url: str,
    sql: str,
    params: Mapping[str, Any],
    *,
    read_only: bool = True,
    max_rows: int = 1000,
    timeout_seconds: float | None = None,
    masker: Masker | None = None,
    label: str = "query",
) -> QueryResult:
    """Run one statement with bound ``params``, fetching at most ``max_rows`` rows.

    Read-only statements run in a read-only transaction that is rolled back; others commit.

    Raises:
        AgentError: ``server`` (cannot connect, database unavailable), ``timeout``, ``client``
            (the database refused the SQL, a write in read-only mode included), ``validation``
            (a value the driver cannot bind) or ``config`` (unusable URL or backend).
    """
    masker = masker or Masker()
    deadline = _Deadline(None if timeout_seconds is None else time.monotonic() + timeout_seconds)
    with _connect(url, masker) as connection:
        try:
            _begin(connection, read_only, deadline)
            result = _fetch(connection, sql, params, max_rows)
            connection.rollback() if read_only else connection.commit()
        except DBAPIError as exc:
            raise _db_error(exc, label, masker, deadline) from None
        except (ValueError, OverflowError, TypeError) as exc:
            detail = masker.text(first_line(exc))
            message = f"{label}: a parameter cannot be bound: {detail}"
            raise AgentError(message, kind="validation") from None
    return result


def _fetch(
    connection: Connection, sql: str, params: Mapping[str, Any], max_rows: int
) -> QueryResult:
    result = connection.execute(text(sql), dict(params))
    if not result.returns_rows:
        return QueryResult([], [], False, affected_rows=result.rowcount)
    columns = list(result.keys())
    fetched = result.fetchmany(max_rows + 1)
    result.close()
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


# --- The agent -----------------------------------------------------------------------------
