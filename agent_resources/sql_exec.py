"""Running a declared query on SQLite or PostgreSQL, with the database as the boundary.

The static check (``sql_check``) is the early error; what keeps a query read-only, one
statement, and within its tables is the database: ``sql_sqlite`` (read-only file and an
authorizer) and ``sql_postgres`` (read-only transaction, a server-side prepared statement, the
role). This module picks the backend and turns what the database refused into an
``AgentError`` with secrets masked.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from agent_resources.base import AgentError
from agent_resources.sql_postgres import (
    PgScope,
    PowerfulLogin,
    ScopeChanged,
    Statement,
    connect,
    run_postgres,
)
from agent_resources.sql_result import Deadline, QueryResult, ResultTooLarge, json_safe
from agent_resources.sql_sqlite import run_sqlite
from baton.secrets import Masker

__all__ = ["PgScope", "QueryResult", "execute_query", "first_line", "json_safe"]

_PARAM_POSITION = re.compile(r"parameter \$(\d+)")


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def execute_query(
    url: str,
    sql: str,
    params: Mapping[str, Any],
    *,
    read_only: bool = True,
    allowed_tables: Iterable[str] = (),
    param_types: Mapping[str, str] | None = None,
    scope: PgScope | None = None,
    max_rows: int = 1000,
    max_bytes: int | None = None,
    timeout_seconds: float | None = None,
    masker: Masker | None = None,
    label: str = "query",
) -> QueryResult:
    """Run one statement with bound ``params``, fetching at most ``max_rows`` rows.

    ``max_bytes`` bounds the values the rows may hold: PostgreSQL measures the rows on the
    server before any leaves it, SQLite (whose values are capped at 16 MB each) counts them as
    they are read; more is a ``limit`` error, never a worker out of memory.

    ``read_only`` statements run in a read-only transaction (SQLite: a read-only file) that is
    rolled back; others commit. On SQLite only ``allowed_tables`` can be touched; on PostgreSQL
    the ``scope``'s role decides. ``param_types`` are the declared input types by name.

    Raises:
        AgentError: ``server`` (cannot connect, database unavailable), ``timeout``, ``client``
            (the database refused the SQL, a write in read-only mode included), ``validation``
            (a value the driver cannot bind) or ``config`` (unusable URL or backend).
    """
    masker = masker or Masker()
    deadline = Deadline.after(timeout_seconds)
    backend, database = _backend(url, masker)
    if backend == "sqlite":
        return _sqlite(
            database, sql, params, read_only, allowed_tables, (max_rows, max_bytes), deadline, label
        )
    statement = Statement.of(sql, param_types or {})
    try:
        connection = connect(url)
    except psycopg.Error as exc:
        detail = masker.text(first_line(exc))
        raise AgentError(f"cannot connect to the database: {detail}", kind="server") from None
    with connection:
        try:
            return run_postgres(
                connection,
                statement,
                params,
                writes=not read_only,
                scope=scope or PgScope(),
                max_rows=max_rows,
                deadline=deadline,
                max_bytes=max_bytes,
            )
        except ResultTooLarge as exc:
            raise _too_large(label, exc) from None
        except psycopg.Error as exc:
            raise _pg_error(exc, statement, label, masker) from exc
        except PowerfulLogin as exc:
            message = (
                f"{label} refused: {exc}; tool queries run only as a role limited to the "
                "tables they need (docs/agents.md: the tool's PostgreSQL role)"
            )
            raise AgentError(message, kind="config") from None
        except ScopeChanged as exc:
            message = f"{label} refused: {exc}; its rows are discarded"
            raise AgentError(message, kind="client") from None


def _backend(url: str, masker: Masker) -> tuple[str, str]:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        detail = masker.text(first_line(exc))
        raise AgentError(f"not a usable database URL: {detail}", kind="config") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        message = f"tool queries run on SQLite and PostgreSQL only, not {backend}"
        raise AgentError(message, kind="config")
    database = parsed.database or ""
    if backend == "sqlite" and database in ("", ":memory:"):
        raise AgentError("a SQLite tool database must be a file, not in memory", kind="config")
    return backend, database


def _sqlite(
    path: str,
    sql: str,
    params: Mapping[str, Any],
    read_only: bool,
    tables: Iterable[str],
    bounds: tuple[int, int | None],
    deadline: Deadline,
    label: str,
) -> QueryResult:
    max_rows, max_bytes = bounds
    try:
        return run_sqlite(
            path,
            sql,
            params,
            writes=not read_only,
            tables=tables,
            max_rows=max_rows,
            deadline=deadline,
            max_bytes=max_bytes,
        )
    except ResultTooLarge as exc:
        raise _too_large(label, exc) from None
    except (sqlite3.Error, sqlite3.Warning) as exc:
        raise _sqlite_error(exc, label, deadline) from None
    except OverflowError as exc:
        message = f"{label}: a parameter cannot be bound: {exc}"
        raise AgentError(message, kind="validation") from None


def _too_large(label: str, exc: ResultTooLarge) -> AgentError:
    message = (
        f"{label} returned rows larger than {exc.max_bytes} bytes (max_output_bytes); "
        "narrow its parameters or lower max_rows"
    )
    return AgentError(message, kind="limit")


def _sqlite_error(exc: Exception, label: str, deadline: Deadline) -> AgentError:
    detail = first_line(exc)
    if deadline.hit or "interrupted" in detail:
        return AgentError(f"{label} timed out: {detail}", kind="timeout")
    unavailable = ("database is locked", "unable to open", "disk I/O", "database is busy")
    if isinstance(exc, sqlite3.OperationalError) and any(u in detail for u in unavailable):
        return AgentError(f"{label} failed (database unavailable): {detail}", kind="server")
    if detail.startswith("Error binding parameter"):
        return AgentError(f"{label}: a parameter cannot be bound: {detail}", kind="validation")
    return AgentError(f"{label} failed: {detail}", kind="client")


def _pg_error(exc: psycopg.Error, statement: Statement, label: str, masker: Masker) -> AgentError:
    detail = masker.text(first_line(exc))
    code = exc.sqlstate or ""
    if code == "57014":
        return AgentError(f"{label} timed out: {detail}", kind="timeout")
    if code == "42P18":  # could not determine data type of parameter $n
        detail = _PARAM_POSITION.sub(lambda m: _param_hint(statement, m), detail)
    transient = code.startswith(("08", "53", "57P")) or code in ("40001", "40P01", "55P03")
    if transient or (isinstance(exc, psycopg.OperationalError) and not code):
        return AgentError(f"{label} failed (database unavailable): {detail}", kind="server")
    return AgentError(f"{label} failed: {detail}", kind="client")


def _param_hint(statement: Statement, match: re.Match[str]) -> str:
    name = statement.parameter_name(int(match.group(1)))
    return f"parameter :{name} (give it a type: CAST(:{name} AS TEXT))" if name else match[0]
