"""PostgreSQL roles for tool-agent tests: created as the docs say, dropped afterwards.

Roles belong to the whole server, not to the test's database: each name is unique to the test
and every role is dropped (with its grants) before the database goes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.engine import make_url

from agent_resources.sql_roles import (
    drop_tool_roles,
    grant_tool_roles,
    login_statements,
    role_statements,
)


@dataclass(frozen=True)
class ToolRoles:
    """A table role that logs in (``reader_url``), and a login role that may only SET ROLE."""

    reader_url: str
    login_url: str
    reader_role: str
    table_role: str
    login_role: str


def url_as(admin_url: str, user: str) -> str:
    """``admin_url`` logged in as ``user`` (trust authentication on the test server)."""
    parsed = make_url(admin_url).set(username=user, password=None)
    return parsed.render_as_string(hide_password=False)


@contextmanager
def tool_roles(
    admin_url: str, tables: Sequence[str], writable: Sequence[str] = ()
) -> Iterator[ToolRoles]:
    """Both setups of docs/agents.md over ``tables`` in the database at ``admin_url``."""
    suffix = uuid.uuid4().hex[:10]
    reader, role, login = (
        f"baton_reader_{suffix}",
        f"baton_tables_{suffix}",
        f"baton_login_{suffix}",
    )
    statements = [
        *role_statements(reader, tables, login=True, writable=writable),
        *role_statements(role, tables, writable=writable),
        *login_statements(login, [role]),
    ]
    grant_tool_roles(admin_url, statements)
    try:
        yield ToolRoles(url_as(admin_url, reader), url_as(admin_url, login), reader, role, login)
    finally:
        drop_tool_roles(admin_url, [reader, role, login])
