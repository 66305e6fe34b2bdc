"""PostgreSQL tool queries, kept read-only by the server rather than by reading the SQL.

One call, on a connection of its own (psycopg 3, whatever driver the URL names):

1. ``BEGIN READ ONLY`` (``READ WRITE`` only for a query that changes data), then the deadline
   as ``statement_timeout``, ``lock_timeout`` and ``idle_in_transaction_session_timeout``, the
   entry's ``search_path`` and ``role`` (``SET LOCAL ROLE``), all local to the transaction;
   the first of them is a query, so from then on the transaction cannot be made read-write.
2. The entry's SQL goes to the server only through the extended protocol, where the server
   refuses more than one command, and only inside a command that admits nothing but a query:
   - a read runs as ``DECLARE <cursor> CURSOR FOR <sql>`` (a server-side cursor): SELECT or
     VALUES only, no data-modifying WITH; rows are fetched ``max_rows + 1`` at a time, so a
     huge result never reaches the worker;
   - a write is first prepared as ``PREPARE <name> AS <sql>`` (SELECT, INSERT, UPDATE, DELETE
     or MERGE only), then deallocated and run with its parameters bound.
   So the statement can never be COMMIT, ROLLBACK, SET, DO, COPY or CALL: it cannot end the
   transaction, leave read-only mode, or run a second command.
   Before any of it, a login that is (or may become) a superuser or a user of server files is
   refused: from inside a statement it could switch back to itself and reach past any grant.
3. A check that the statement did not switch the role or search_path (``set_config('role',
   ...)``): its rows are discarded if it did.
4. ``ROLLBACK`` (``COMMIT`` for a write); the connection is closed, so no setting the statement
   made outlives the call.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql as pgsql
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import make_url

from agent_resources.sql_result import Deadline, QueryResult, ResultTooLarge, fetch_rows

CONNECT_TIMEOUT_SECONDS = 10
# Waiting on another session's lock gives up well before the deadline: a locked table is a
# retryable error (55P03), not a query that silently used its whole timeout.
MAX_LOCK_WAIT_MS = 10_000
# A string parameter is typed by its use (a date column, a text column), as a literal would be.
PG_PARAM_TYPES = {"string": "unknown", "integer": "bigint", "number": "numeric",
                  "boolean": "boolean"}  # fmt: skip
_PSYCOPG_DIALECT = PGDialect_psycopg()
_DOLLAR_DIALECT = PGDialect_psycopg(paramstyle="numeric_dollar")


class ScopeChanged(Exception):
    """The statement switched the role or search_path it was given: its rows are discarded."""


class PowerfulLogin(Exception):
    """The URL's user could reach past any grant: a superuser, or one that may use server files.

    Such a session can switch back to itself from inside a statement and read files, write
    them or open connections of its own (``dblink``), so no query runs as it.
    """


# Roles whose members can do what no table grant limits.
_POWERFUL_LOGIN = """
SELECT session_user, r.rolname FROM pg_roles r
WHERE pg_has_role(session_user, r.oid, 'MEMBER')
  AND (r.rolsuper OR r.rolname IN ('pg_read_server_files', 'pg_write_server_files',
                                   'pg_execute_server_program'))
LIMIT 1
"""


@dataclass(frozen=True)
class PgScope:
    """What limits a statement beyond read-only: the role it runs as and its search_path."""

    role: str | None = None
    schema: str | None = None


@dataclass(frozen=True)
class Statement:
    """The entry's SQL in psycopg's placeholders, and in ``$n`` form for ``PREPARE``."""

    sql: str
    numbered_sql: str
    param_names: tuple[str, ...]
    param_types: tuple[str, ...]

    @classmethod
    def of(cls, sql: str, types: Mapping[str, str]) -> Statement:
        """``:name`` bind parameters become ``%(name)s`` and ``$1``..``$n`` (same order)."""
        numbered = text(sql).compile(dialect=_DOLLAR_DIALECT)
        names = tuple(dict.fromkeys(numbered.positiontup or ()))
        pg_types = tuple(PG_PARAM_TYPES.get(types.get(n, "string"), "unknown") for n in names)
        psycopg_sql = str(text(sql).compile(dialect=_PSYCOPG_DIALECT))
        return cls(psycopg_sql, str(numbered), names, pg_types)

    def prepare(self, name: str) -> pgsql.Composed:
        """``PREPARE name (types) AS <sql>``: the server admits only a query here."""
        types: pgsql.Composable = pgsql.SQL("")
        if self.param_types:
            listed = pgsql.SQL(", ").join(pgsql.SQL(t) for t in self.param_types)  # type: ignore[arg-type]
            types = pgsql.SQL("({})").format(listed)
        body = pgsql.SQL(self.numbered_sql)  # type: ignore[arg-type]
        return pgsql.SQL("PREPARE {} {} AS {}").format(pgsql.Identifier(name), types, body)

    def parameter_name(self, position: int) -> str:
        """The ``:name`` behind ``$position`` (for error messages)."""
        return self.param_names[position - 1] if 0 < position <= len(self.param_names) else ""


def connect_args(url: str) -> dict[str, Any]:
    """psycopg keyword arguments from a SQLAlchemy URL (its query, e.g. sslmode, included)."""
    parsed = make_url(url)
    args: dict[str, Any] = parsed.translate_connect_args(username="user", database="dbname")
    args.update({k: v if isinstance(v, str) else v[-1] for k, v in parsed.query.items()})
    args.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    return args


def connect(url: str) -> psycopg.Connection[Any]:
    """A new connection in autocommit mode: every transaction boundary is written out here."""
    return psycopg.connect(**connect_args(url), autocommit=True)


def run_postgres(
    connection: psycopg.Connection[Any],
    statement: Statement,
    params: Mapping[str, Any],
    *,
    writes: bool,
    scope: PgScope,
    max_rows: int,
    deadline: Deadline,
    max_bytes: int | None = None,
) -> QueryResult:
    """Run the statement once on ``connection`` (see the module's steps).

    Raises:
        psycopg.Error: what the server refused.
        ScopeChanged: the statement switched role or search_path.
        ResultTooLarge: the rows hold more than ``max_bytes``.
    """
    _begin(connection, writes, scope, deadline)
    values = {name: params.get(name) for name in statement.param_names}
    if writes:
        result = _write(connection, statement, values, max_rows, max_bytes)
    else:
        if max_bytes is not None:
            _check_sizes(connection, statement, values, max_rows, max_bytes)
        result = _read(connection, statement, values, max_rows, max_bytes)
    _check_scope(connection, scope)
    connection.execute("COMMIT" if writes else "ROLLBACK")
    return result


def _read(
    connection: psycopg.Connection[Any],
    statement: Statement,
    values: Mapping[str, Any],
    max_rows: int,
    max_bytes: int | None,
) -> QueryResult:
    # psycopg declares a named cursor through the extended protocol (one command).
    with connection.cursor(name=f"baton_c_{uuid.uuid4().hex}") as cursor:
        cursor.execute(statement.sql, values)  # type: ignore[arg-type]
        return fetch_rows(cursor, max_rows, max_bytes)


def _check_sizes(
    connection: psycopg.Connection[Any],
    statement: Statement,
    values: Mapping[str, Any],
    max_rows: int,
    max_bytes: int,
) -> None:
    """Refuse rows too big to take in before any of them leaves the server.

    A row count alone bounds nothing (one ``repeat('x', 3e8)`` value is 300 MB, and a batch
    of rows is read whole), so the same query first runs for its rows' sizes only, in the same
    read-only transaction. The SQL stays one command inside ``DECLARE``; the newline keeps a
    trailing ``--`` comment from swallowing the closing parenthesis.
    """
    sizing = f"SELECT octet_length(baton_row::text) FROM (\n{statement.sql}\n) AS baton_row"
    total = 0
    with connection.cursor(name=f"baton_s_{uuid.uuid4().hex}") as cursor:
        cursor.execute(sizing, values)  # type: ignore[arg-type]
        for (size,) in cursor.fetchmany(max_rows + 1):
            total += size or 0
            if total > max_bytes:
                raise ResultTooLarge(max_bytes)


def _write(
    connection: psycopg.Connection[Any],
    statement: Statement,
    values: Mapping[str, Any],
    max_rows: int,
    max_bytes: int | None,
) -> QueryResult:
    name = f"baton_q_{uuid.uuid4().hex}"
    cursor = connection.cursor()
    with connection.pipeline():  # pipeline mode: always the extended protocol
        cursor.execute(statement.prepare(name))
    connection.execute(pgsql.SQL("DEALLOCATE {}").format(pgsql.Identifier(name)))
    with connection.pipeline():
        cursor.execute(statement.sql, values)  # type: ignore[arg-type]
    return fetch_rows(cursor, max_rows, max_bytes)


def _begin(
    connection: psycopg.Connection[Any], writes: bool, scope: PgScope, deadline: Deadline
) -> None:
    connection.execute("BEGIN READ WRITE" if writes else "BEGIN READ ONLY")
    powerful = connection.execute(_POWERFUL_LOGIN).fetchone()
    if powerful:
        user, role = powerful
        raise PowerfulLogin(f"the database URL logs in as {user}, which is or may act as {role}")
    ms = deadline.remaining_ms()
    timeouts: Sequence[Any] = [str(ms), str(min(ms, MAX_LOCK_WAIT_MS)), str(ms + 5_000)]
    connection.execute(
        "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true),"
        " set_config('idle_in_transaction_session_timeout', %s, true)",
        timeouts,
    )
    if scope.schema:
        path = pgsql.SQL("SET LOCAL search_path TO {}").format(pgsql.Identifier(scope.schema))
        connection.execute(path)
    if scope.role:
        connection.execute(pgsql.SQL("SET LOCAL ROLE {}").format(pgsql.Identifier(scope.role)))


def _check_scope(connection: psycopg.Connection[Any], scope: PgScope) -> None:
    row = connection.execute(
        "SELECT current_user, current_setting('search_path') = quote_ident(%s)",
        [scope.schema or ""],
    ).fetchone()
    user, same_path = row if row else ("", False)
    if scope.role and user != scope.role:
        raise ScopeChanged(f"the statement switched the role from {scope.role} to {user}")
    if scope.schema and not same_path:
        raise ScopeChanged("the statement changed the search_path")
