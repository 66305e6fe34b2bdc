"""PostgreSQL keeps tool queries in bounds by itself: read-only transaction, one command, role.

Every attack goes straight to ``execute_query``, past the static check, as a hostile entry
author's SQL would if the check missed it. Each runs twice: logged in as a table role (the
simple setup) and as a login role that only ``SET LOCAL ROLE``s to one (docs/agents.md). Each
must be refused by the server, change nothing, and read nothing of ``api_tokens``.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent_resources.base import AgentError
from agent_resources.finance_data import seed_finance_db
from agent_resources.sql_exec import PgScope, QueryResult, execute_query
from agent_resources.sql_postgres import Statement, connect_args
from agent_resources.sql_roles import role_statements
from tests.agent_resources.pg_roles import ToolRoles, tool_roles

pytestmark = pytest.mark.postgres

TABLES = ["kpi_monthly", "regions"]
TOKEN = "tok-5ecret-a9f3c2"


@dataclass(frozen=True)
class Target:
    """Where a query runs: the URL and the scope the tool gives it."""

    url: str
    scope: PgScope
    admin_url: str
    roles: ToolRoles


@pytest.fixture
def world(pg_url: str) -> Iterator[ToolRoles]:
    """The finance tables, ``api_tokens`` holding a token, dblink, and the two setups' roles."""
    seed_finance_db(pg_url)
    with psycopg.connect(**connect_args(pg_url), autocommit=True) as admin:
        admin.execute("CREATE TABLE api_tokens (id serial PRIMARY KEY, token text NOT NULL)")
        admin.execute("INSERT INTO api_tokens (token) VALUES (%s)", [TOKEN])
        admin.execute("CREATE EXTENSION IF NOT EXISTS dblink")
    with tool_roles(pg_url, TABLES) as roles:
        yield roles


@pytest.fixture(params=["table_login", "set_role"])
def target(request: pytest.FixtureRequest, pg_url: str, world: ToolRoles) -> Target:
    if request.param == "table_login":
        return Target(world.reader_url, PgScope(schema="public"), pg_url, world)
    return Target(world.login_url, PgScope(role=world.table_role, schema="public"), pg_url, world)


def run(target: Target, sql: str, **options: Any) -> QueryResult:
    options.setdefault("scope", target.scope)
    return execute_query(target.url, sql, options.pop("params", {}), **options)


def state(admin_url: str) -> tuple[Any, ...]:
    """Rows of every table and the token itself: what an attack must leave as it was."""
    with psycopg.connect(**connect_args(admin_url)) as conn:
        counts = conn.execute(
            "SELECT (SELECT COUNT(*) FROM kpi_monthly), (SELECT SUM(revenue) FROM kpi_monthly),"
            " (SELECT COUNT(*) FROM regions), (SELECT array_agg(token) FROM api_tokens),"
            " (SELECT array_agg(tablename::text ORDER BY tablename) FROM pg_tables"
            "  WHERE schemaname = 'public')"
        ).fetchone()
    return tuple(counts or ())


def refused(target: Target, sql: str, **options: Any) -> AgentError:
    before = state(target.admin_url)
    with pytest.raises(AgentError) as caught:
        run(target, sql, **options)
    assert state(target.admin_url) == before
    assert TOKEN not in str(caught.value)
    return caught.value


ATTACKS = {
    # Ending the read-only transaction, or a second command after it.
    "commit_delete": ("SELECT 1; COMMIT; DELETE FROM kpi_monthly", "multiple commands"),
    "rollback_delete": ("SELECT 1; ROLLBACK; DELETE FROM kpi_monthly", "multiple commands"),
    "end_delete": ("END; DELETE FROM kpi_monthly", "syntax error"),
    "commit": ("COMMIT", "syntax error"),
    "rollback": ("ROLLBACK", "syntax error"),
    "set_read_write": ("SET TRANSACTION READ WRITE", "syntax error"),
    "session_characteristics": (
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "syntax error"
    ),
    "set_config_read_write": (
        "SELECT set_config('transaction_read_only', 'off', true)", "read-write mode"
    ),
    "set_config_then_delete": (
        "SELECT set_config('default_transaction_read_only', 'off', false); "
        "DELETE FROM kpi_monthly",
        "multiple commands",
    ),
    # Writing from inside one read.
    "writable_cte": (
        "WITH d AS (DELETE FROM kpi_monthly RETURNING *) SELECT * FROM d", "data-modifying"
    ),
    "for_update": ("SELECT * FROM kpi_monthly FOR UPDATE", "read-only transaction"),
    "for_share": ("SELECT * FROM regions FOR KEY SHARE", "read-only transaction"),
    "query_to_xml_delete": (
        "SELECT query_to_xml('delete from kpi_monthly', true, true, '')", "not allowed"
    ),
    "copy": ("COPY kpi_monthly TO STDOUT", "syntax error"),
    "copy_program": ("COPY (SELECT 1) TO PROGRAM 'touch /tmp/baton-pwned'", "syntax error"),
    "do_block": ("DO $$ BEGIN DELETE FROM kpi_monthly; END $$", "syntax error"),
    "call": ("CALL pg_catalog.pg_sleep(0)", "syntax error"),
    "lock": ("LOCK TABLE kpi_monthly", "syntax error"),
    "dollar_quote_then_delete": ("SELECT $q$x$q$; DELETE FROM kpi_monthly", "multiple commands"),
    "backslash_quote": ("SELECT 'a\\'; DELETE FROM kpi_monthly; --'", "multiple commands"),
    "e_string": ("SELECT E'\\\\'; DELETE FROM kpi_monthly", "multiple commands"),
    "lo_import": ("SELECT lo_import('/etc/hostname')", "lo_import"),
    "dblink_exec": (
        "SELECT dblink_exec('host=127.0.0.1 user=postgres dbname=postgres', "
        "'CREATE TABLE baton_pwned (x int)')",
        "password",
    ),
    # Reading what the role was not granted, however it is named or reached.
    "nested_comment_union": (
        "SELECT region FROM regions /* /* */ -- */ UNION SELECT token FROM api_tokens",
        "permission denied",
    ),
    "plain": ("SELECT token FROM api_tokens", "permission denied"),
    "qualified": ("SELECT token FROM public.api_tokens", "permission denied"),
    "unicode_escape": ('SELECT token FROM U&"api\\005ftokens"', "permission denied"),
    "table_statement": ("TABLE api_tokens", "permission denied"),
    "values_subquery": ("VALUES ((SELECT token FROM api_tokens))", "permission denied"),
    "query_to_xml_read": (
        "SELECT query_to_xml('select token from api_tokens', true, true, '')",
        "permission denied",
    ),
    "pg_read_file": ("SELECT pg_read_file('/etc/passwd')", "permission denied"),
    "pg_authid": ("SELECT rolpassword FROM pg_catalog.pg_authid", "permission denied"),
    "dblink_read": (
        "SELECT * FROM dblink('host=127.0.0.1 user=postgres dbname=postgres', "
        "'SELECT 1') AS t(x int)",
        "password",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("sql", "expected"), ATTACKS.values(), ids=list(ATTACKS))
def test_attacks_are_refused_and_change_nothing(target: Target, sql: str, expected: str) -> None:
    error = refused(target, sql)
    assert error.kind == "client" and not error.retryable
    assert expected in str(error)
    assert not Path("/tmp/baton-pwned").exists()


HARMLESS = {
    # What the old checker misread is only text or a comment to PostgreSQL.
    "nested_comment_hides_union": (
        "SELECT region FROM regions /* /* */ UNION SELECT token FROM api_tokens -- */"
    ),
    "dollar_quoted_semicolons": (
        "SELECT $x$ '; DELETE FROM kpi_monthly; $x$ AS region FROM regions"
    ),
    "e_string_quote": ("SELECT E'\\'; DELETE FROM kpi_monthly; --' AS region FROM regions"),
    "line_comment_carriage_return": ("SELECT region FROM regions -- \r LIMIT 1"),
}  # fmt: skip


@pytest.mark.parametrize("sql", HARMLESS.values(), ids=list(HARMLESS))
def test_text_that_only_looks_like_sql_stays_text(target: Target, sql: str) -> None:
    before = state(target.admin_url)
    result = run(target, sql)
    assert state(target.admin_url) == before
    assert result.rows and TOKEN not in str(result.rows)


def test_a_session_setting_made_by_one_query_does_not_reach_the_next(target: Target) -> None:
    off = "SELECT set_config('default_transaction_read_only', 'off', false) AS region"
    assert run(target, off).rows == [{"region": "off"}]
    error = refused(target, "DELETE FROM kpi_monthly", read_only=False)
    assert "permission denied" in str(error)
    assert "read-only" in str(refused(target, "SELECT * FROM kpi_monthly FOR UPDATE"))


def test_a_sleep_past_the_deadline_is_cancelled(target: Target) -> None:
    error = refused(target, "SELECT pg_sleep(30)", timeout_seconds=0.5)
    assert error.kind == "timeout" and error.retryable


def test_the_statement_cannot_lift_its_own_timeout(target: Target) -> None:
    sql = "SELECT set_config('statement_timeout', '0', true), pg_sleep(30)"
    error = refused(target, sql, timeout_seconds=0.5)
    assert error.kind == "timeout"


# --- The role -------------------------------------------------------------------------------


def test_switching_back_to_the_login_role_gains_nothing(pg_url: str, world: ToolRoles) -> None:
    target = Target(world.login_url, PgScope(role=world.table_role), pg_url, world)
    sql = (
        f"SELECT set_config('role', '{world.login_role}', true) AS r, "
        "query_to_xml('select token from api_tokens', true, true, '') AS x"
    )
    assert "permission denied" in str(refused(target, sql))


def test_rows_read_after_switching_role_are_discarded(pg_url: str, world: ToolRoles) -> None:
    target = Target(world.login_url, PgScope(role=world.table_role), pg_url, world)
    sql = f"SELECT set_config('role', '{world.login_role}', true) AS region"
    error = refused(target, sql)
    assert "switched the role" in str(error) and "discarded" in str(error)


def test_rows_read_after_changing_search_path_are_discarded(target: Target) -> None:
    error = refused(target, "SELECT set_config('search_path', 'pg_temp', true) AS region")
    assert "search_path" in str(error)


def test_without_the_role_the_login_role_reads_nothing(pg_url: str, world: ToolRoles) -> None:
    target = Target(world.login_url, PgScope(), pg_url, world)
    assert "permission denied" in str(refused(target, "SELECT region FROM regions"))


@pytest.mark.parametrize("user", ["postgres", "files"])
def test_a_powerful_login_is_refused(pg_url: str, world: ToolRoles, user: str) -> None:
    url = pg_url
    if user == "files":
        with psycopg.connect(**connect_args(pg_url), autocommit=True) as admin:
            admin.execute(f"GRANT pg_read_server_files TO {world.reader_role}")
        url = world.reader_url
    target = Target(url, PgScope(role=world.table_role), pg_url, world)
    error = refused(target, "SELECT region FROM regions")
    assert error.kind == "config" and "logs in as" in str(error)


def test_role_statements_grant_only_the_tables() -> None:
    statements = [s.as_string(None) for s in role_statements("r", ["kpi_monthly", "x.t"])]
    assert 'GRANT SELECT ON TABLE "public"."kpi_monthly", "x"."t" TO "r"' in statements
    assert any("NOSUPERUSER" in s and "NOLOGIN" in s and "NOINHERIT" in s for s in statements)
    assert not any("INSERT" in s for s in statements)


# --- What stays allowed --------------------------------------------------------------------


def test_a_declared_write_runs_in_its_own_transaction(pg_url: str, world: ToolRoles) -> None:
    with tool_roles(pg_url, TABLES, writable=["kpi_monthly"]) as roles:
        target = Target(roles.reader_url, PgScope(), pg_url, roles)
        sql = "UPDATE kpi_monthly SET costs = costs WHERE region = :region"
        params = {"region": "NA"}
        done = run(target, sql, read_only=False, params=params, param_types={"region": "string"})
        assert done.affected_rows == 24
        assert "permission denied" in str(refused(target, "DELETE FROM regions", read_only=False))
        assert "syntax error" in str(refused(target, "COMMIT", read_only=False))
        two = "UPDATE kpi_monthly SET costs = 0; DELETE FROM kpi_monthly"
        assert "multiple commands" in str(refused(target, two, read_only=False))
        steal = "WITH t AS (DELETE FROM api_tokens RETURNING *) UPDATE kpi_monthly SET costs = 0"
        assert "permission denied" in str(refused(target, steal, read_only=False))
        untyped = "UPDATE kpi_monthly SET costs = costs WHERE :free IS NULL"
        error = refused(target, untyped, read_only=False, params={"free": "a"})
        assert "parameter :free" in str(error) and "CAST(:free AS TEXT)" in str(error)


def test_parameters_are_bound_and_typed_by_their_use(target: Target) -> None:
    sql = (
        "SELECT COUNT(*) AS n FROM kpi_monthly WHERE month >= :start AND revenue > :low "
        "AND (CAST(:region AS TEXT) IS NULL OR region = :region) AND :flag"
    )
    types = {"start": "string", "low": "number", "region": "string", "flag": "boolean"}
    params = {"start": "2025-01", "low": 0.5, "region": None, "flag": True}
    result = run(target, sql, params=params, param_types=types)
    assert result.rows == [{"n": 48}]
    params["region"] = "x' OR '1'='1"
    assert run(target, sql, params=params, param_types=types).rows == [{"n": 0}]


def test_a_read_parameter_used_alone_is_text(target: Target) -> None:
    assert run(target, "SELECT :free AS x", params={"free": "a"}).rows == [{"x": "a"}]


def test_rows_beyond_max_rows_never_leave_the_server(target: Target) -> None:
    # 96^4 = 85 million rows, produced lazily: only the first four are ever fetched.
    huge = "SELECT a.month AS n FROM kpi_monthly a, kpi_monthly b, kpi_monthly c, kpi_monthly d"
    result = run(target, huge, max_rows=3)
    assert len(result.rows) == 3 and result.truncated


def test_statements_name_their_parameters_in_order() -> None:
    statement = Statement.of(
        "SELECT :b, :a, :b, '100%' WHERE x = :a", {"a": "integer", "b": "string"}
    )
    assert statement.param_names == ("b", "a")
    assert statement.param_types == ("unknown", "bigint")
    assert statement.numbered_sql == "SELECT $1, $2, $1, '100%' WHERE x = $2"
    assert statement.sql == "SELECT %(b)s, %(a)s, %(b)s, '100%%' WHERE x = %(a)s"
    assert statement.parameter_name(2) == "a" and statement.parameter_name(3) == ""


BIG_VALUES = {
    "repeat": "SELECT repeat('x', 300000000) AS big FROM kpi_monthly LIMIT 2",
    "many-medium-rows": "SELECT repeat('x', 200000) AS big FROM kpi_monthly",
    "lpad": "SELECT lpad('', 250000000, 'y') AS big",
    "array": "SELECT array_fill('xxxxxxxxxx'::text, ARRAY[20000000]) AS big",
    "string-agg": "SELECT string_agg(repeat('z', 100000), '') AS big FROM kpi_monthly",
}


@pytest.mark.parametrize("sql", BIG_VALUES.values(), ids=list(BIG_VALUES))
def test_rows_too_big_to_take_in_are_refused_before_they_leave_the_server(
    target: Target, sql: str
) -> None:
    # A row count alone bounds nothing: one value may be a gigabyte.
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    error = refused(target, sql, max_bytes=1_000_000)
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert error.kind == "limit" and "larger than 1000000 bytes" in str(error), str(error)
    assert grown_kb < 100_000  # the worker never held the 300 MB


def test_rows_within_the_byte_budget_are_read_whole(target: Target) -> None:
    result = run(target, "SELECT month, region FROM kpi_monthly", max_bytes=1_000_000)
    assert len(result.rows) > 10 and not result.truncated
