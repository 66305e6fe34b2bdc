"""SQLite tool queries, limited by SQLite itself rather than by reading the SQL.

Three things hold whatever the statement's text:

- the file is opened read-only (``mode=ro``; ``mode=rw`` only for a query that changes data,
  never ``rwc``: a wrong path is an error, not a new empty database);
- an authorizer callback (``sqlite3.Connection.set_authorizer``) sees every table, column and
  function as SQLite compiles the statement, views and subqueries included, and allows only
  SELECT, reads of the allowed tables, functions on a list of pure ones, and (for a query
  that changes data) INSERT/UPDATE/DELETE on the allowed tables; everything else is denied:
  ATTACH, PRAGMA, transactions, schema changes, ``load_extension``, ``sqlite_master``;
- ``sqlite3`` compiles one statement per ``execute`` and raises before running anything when
  text follows it.

Lengths and attached databases are capped (``setlimit``) and a progress handler enforces the
deadline.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agent_resources.sql_result import Deadline, QueryResult, fetch_rows

# Pure functions: no I/O, no extension loading, no session state. Anything not listed is denied.
SAFE_FUNCTIONS = frozenset(
    {"avg", "count", "group_concat", "max", "min", "sum", "total", "string_agg",
     "abs", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex", "ifnull", "iif",
     "instr", "length", "like", "likelihood", "likely", "lower", "ltrim", "nullif",
     "octet_length", "printf", "quote", "replace", "round", "rtrim", "sign", "substr",
     "substring", "trim", "typeof", "unhex", "unicode", "unlikely", "upper",
     "date", "time", "datetime", "julianday", "strftime", "unixepoch", "timediff",
     "acos", "asin", "atan", "atan2", "ceil", "ceiling", "cos", "exp", "floor", "ln", "log",
     "log10", "log2", "mod", "pi", "pow", "power", "sin", "sqrt", "tan", "trunc",
     "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
     "first_value", "last_value", "nth_value",
     "json", "json_array", "json_array_length", "json_extract", "json_object", "json_quote",
     "json_type", "json_valid", "json_group_array", "json_group_object", "->", "->>"}
)  # fmt: skip
_WRITES = frozenset({sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE})
# A statement's values and its own text stay small: the output is capped at max_output_bytes
# anyway, and zeroblob()/printf() could otherwise build gigabytes in the worker.
_LIMITS = {
    sqlite3.SQLITE_LIMIT_LENGTH: 16_000_000,
    sqlite3.SQLITE_LIMIT_SQL_LENGTH: 1_000_000,
    sqlite3.SQLITE_LIMIT_ATTACHED: 0,
}


_SCHEMA_TABLES = frozenset({"sqlite_schema", "sqlite_master", "sqlite_temp_schema",
                            "sqlite_temp_master", "sqlite_sequence", "sqlite_stat1"})  # fmt: skip


class SqlitePolicy:
    """The authorizer: what a tool statement may touch (table names compared lower-cased).

    ``existing`` are the database's tables and views: ``count(*)`` over a CTE or a subquery is
    reported like a read of a table with no column, and is allowed only for names that are not
    one of them.
    """

    def __init__(self, tables: Iterable[str], writes: bool, existing: Iterable[str]) -> None:
        self.tables = frozenset(_sqlite_table(t) for t in tables) - {""}
        self.existing = frozenset(name.lower() for name in existing) | _SCHEMA_TABLES
        self.writes = writes

    def authorize(
        self,
        action: int,
        arg1: str | None,
        arg2: str | None,
        db_name: str | None,
        _source: str | None,
    ) -> int:
        """``sqlite3``'s authorizer callback: SQLITE_OK or SQLITE_DENY."""
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ and arg2 == "" and db_name is None:
            return self._counted(arg1)
        if action == sqlite3.SQLITE_READ or (self.writes and action in _WRITES):
            return self._table(arg1, db_name)
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in SAFE_FUNCTIONS:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    def _table(self, table: str | None, db_name: str | None) -> int:
        if db_name == "main" and (table or "").lower() in self.tables:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    def _counted(self, name: str | None) -> int:
        name = (name or "").lower()
        if name in self.tables or name not in self.existing:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY


def _sqlite_table(name: str) -> str:
    """An allowed_tables entry as SQLite names it: ``t`` or ``main.t``; others match nothing."""
    schema, _, table = name.lower().rpartition(".")
    return table if schema in ("", "main") else ""


def sqlite_uri(path: str, writes: bool) -> str:
    """The ``file:`` URI that opens ``path`` read-only (read-write without creating it)."""
    return f"{Path(path).absolute().as_uri()}?mode={'rw' if writes else 'ro'}"


def run_sqlite(
    path: str,
    sql: str,
    params: Mapping[str, Any],
    *,
    writes: bool,
    tables: Iterable[str],
    max_rows: int,
    deadline: Deadline,
    max_bytes: int | None = None,
) -> QueryResult:
    """Run one statement under the policy, on a connection of its own.

    Raises:
        sqlite3.Error: what SQLite refused (``not authorized``, ``interrupted`` past the
            deadline, more than one statement, a missing file...).
    """
    connection = sqlite3.connect(sqlite_uri(path, writes), uri=True, isolation_level=None)
    try:
        existing = _prepare(connection, writes, deadline)
        connection.set_authorizer(SqlitePolicy(tables, writes, existing).authorize)
        # Autocommit (isolation_level=None): a write is its own transaction, and no BEGIN is
        # issued behind the authorizer's back.
        return fetch_rows(connection.execute(sql, dict(params)), max_rows, max_bytes)
    finally:
        connection.close()


def _prepare(connection: sqlite3.Connection, writes: bool, deadline: Deadline) -> list[str]:
    """Limits and pragmas, before the authorizer is in place; the names of tables and views."""
    for limit, value in _LIMITS.items():
        connection.setlimit(limit, value)
    # Views and triggers in the file may not call functions with side effects.
    connection.execute("PRAGMA trusted_schema=OFF")
    if not writes:
        connection.execute("PRAGMA query_only=ON")
    connection.set_progress_handler(deadline.progress, 1000)
    rows = connection.execute("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view')")
    return [str(name) for (name,) in rows]
