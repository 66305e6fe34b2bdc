"""PostgreSQL roles for the tool agent: what a query may read is what its role was granted.

Run once by the operator, as the tables' owner or a superuser (``grant_tool_roles``, or the
statements ``role_statements`` and ``login_statements`` return; docs/agents.md lists them).

- A *table role* has ``USAGE`` on the schema and ``SELECT`` on the listed tables, nothing else
  (``INSERT``/``UPDATE``/``DELETE`` only on tables listed as writable); a read-only one also has
  ``default_transaction_read_only`` on.
- The URL either logs in as a table role itself (``login=True``: the simplest setup), or as a
  *login role* that has no grants of its own and does not inherit (``NOINHERIT``), and is a
  member of one or more table roles that entries name in ``config.role`` (``SET LOCAL ROLE``).
  A statement that switches the role back (``set_config('role', ...)``) then has the login's
  privileges, which are none.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql as pgsql

from agent_resources.sql_postgres import connect

# No attribute that reaches beyond granted tables: the session can never become more.
_PLAIN = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"


def _table(name: str, schema: str) -> pgsql.Identifier:
    owner, _, table = name.rpartition(".")
    return pgsql.Identifier(owner or schema, table)


def _create(role: str, login: bool, password: str | None) -> pgsql.Composed:
    attributes = pgsql.SQL(f"{_PLAIN} {'LOGIN' if login else 'NOLOGIN'}")  # type: ignore[arg-type]
    if password is None:
        return pgsql.SQL("CREATE ROLE {} {}").format(pgsql.Identifier(role), attributes)
    return pgsql.SQL("CREATE ROLE {} {} PASSWORD {}").format(
        pgsql.Identifier(role), attributes, pgsql.Literal(password)
    )


def role_statements(
    role: str,
    tables: Sequence[str],
    *,
    schema: str = "public",
    login: bool = False,
    password: str | None = None,
    writable: Sequence[str] = (),
) -> list[pgsql.Composed]:
    """A table role: ``SELECT`` on ``tables`` (``schema.table`` or in ``schema``), no more."""
    name = pgsql.Identifier(role)
    listed = pgsql.SQL(", ").join(_table(t, schema) for t in tables)
    statements = [
        _create(role, login, password),
        pgsql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(pgsql.Identifier(schema), name),
        pgsql.SQL("GRANT SELECT ON TABLE {} TO {}").format(listed, name),
    ]
    if writable:
        written = pgsql.SQL(", ").join(_table(t, schema) for t in writable)
        grant = pgsql.SQL("GRANT INSERT, UPDATE, DELETE ON TABLE {} TO {}")
        statements.append(grant.format(written, name))
    else:
        setting = pgsql.SQL("ALTER ROLE {} SET default_transaction_read_only = on")
        statements.append(setting.format(name))
    return statements


def login_statements(
    login: str, table_roles: Sequence[str], *, password: str | None = None
) -> list[pgsql.Composed]:
    """A login role with no grants of its own, member of ``table_roles`` (``SET ROLE`` only)."""
    statements = [_create(login, True, password)]
    for role in table_roles:
        grant = pgsql.SQL("GRANT {} TO {}").format(pgsql.Identifier(role), pgsql.Identifier(login))
        statements.append(grant)
    return statements


def grant_tool_roles(admin_url: str, statements: Sequence[pgsql.Composed]) -> None:
    """Run ``statements`` in one transaction at ``admin_url`` (all of them, or none).

    Raises:
        psycopg.Error: what the server refused (a role that exists already, a missing table).
    """
    with connect(admin_url) as connection, connection.transaction():
        for statement in statements:
            connection.execute(statement)


def drop_tool_roles(admin_url: str, roles: Sequence[str]) -> None:
    """Drop ``roles`` and what they were granted in the database at ``admin_url``."""
    names = pgsql.SQL(", ").join(pgsql.Identifier(r) for r in roles)
    with connect(admin_url) as connection, connection.transaction():
        connection.execute(pgsql.SQL("DROP OWNED BY {}").format(names))
        connection.execute(pgsql.SQL("DROP ROLE {}").format(names))
