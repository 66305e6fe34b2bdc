"""The tool agent (the ``supabase-agent`` entry) against real SQLite and Postgres databases."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from agent_resources.base import AgentError, AgentRequest, AgentResult
from agent_resources.catalog import AgentEntry, agent_catalog
from agent_resources.contracts import agent_input_checks
from agent_resources.finance_data import kpi_rows, seed_finance_db
from agent_resources.sql_exec import execute_query, json_safe
from agent_resources.tool import ToolAgent
from baton.settings import get_settings
from tests.agent_resources.pg_roles import tool_roles

URL_ENV = "BATON_FINANCE_DATABASE_URL"
TABLES = ["kpi_monthly", "regions"]
SPAN = {"start_month": "2024-01", "end_month": "2025-12"}
FREE_TEXT_QUERY = {
    "description": "Rows of one region, the region given as free text.",
    "sql": "SELECT month, region, revenue FROM kpi_monthly WHERE region = :region",
    "params": {"region": {"type": "string", "required": True}},
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def finance_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A seeded finance database (no Baton migrations), once on SQLite and once on Postgres.

    On Postgres the URL logs in as a role granted only the finance tables (docs/agents.md); it
    may write them, so that a write refused in read-only mode is refused by the transaction.
    """
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    seed_finance_db(url)
    if request.param == "sqlite":
        yield url
        return
    with tool_roles(url, TABLES, writable=TABLES) as roles:
        yield roles.reader_url


@pytest.fixture
def entry() -> AgentEntry:
    return agent_catalog()["supabase-agent"]


def with_config(entry: AgentEntry, **changes: Any) -> AgentEntry:
    return entry.model_copy(update={"config": {**entry.config, **changes}})


def with_queries(entry: AgentEntry, **queries: Any) -> AgentEntry:
    return with_config(entry, queries={**entry.config["queries"], **queries})


def call(agent_or_entry: ToolAgent | AgentEntry, url: str | None, value: Any) -> AgentResult:
    agent = agent_or_entry if isinstance(agent_or_entry, ToolAgent) else ToolAgent(agent_or_entry)
    env = {URL_ENV: url} if url else {}
    request = AgentRequest(run_id="r", step_id="s", attempt=1, input=value, env=env)
    return agent.run(request)


def fails(agent_or_entry: ToolAgent | AgentEntry, url: str | None, value: Any) -> AgentError:
    with pytest.raises(AgentError) as caught:
        call(agent_or_entry, url, value)
    return caught.value


def kpi_count(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(text("SELECT COUNT(*) FROM kpi_monthly")) or 0)
    finally:
        engine.dispose()


# --- The declared queries ------------------------------------------------------------------


def test_monthly_kpis_returns_every_row_of_the_span(entry: AgentEntry, finance_url: str) -> None:
    output = call(entry, finance_url, {"query": "monthly_kpis", "params": SPAN}).output
    assert output["query"] == "monthly_kpis"
    assert output["columns"] == [
        "month", "region", "revenue", "costs", "gross_margin", "new_customers",
        "churned_customers", "churn_rate", "mrr",
    ]  # fmt: skip
    assert output["row_count"] == len(output["rows"]) == 96
    assert output["truncated"] is False
    expected = sorted(kpi_rows(), key=lambda r: (r["month"], r["region"]))
    assert output["rows"] == [pytest.approx(row) for row in expected]


def test_monthly_kpis_filters_by_region(entry: AgentEntry, finance_url: str) -> None:
    params = {"start_month": "2025-01", "end_month": "2025-06", "region": "APAC"}
    rows = call(entry, finance_url, {"query": "monthly_kpis", "params": params}).output["rows"]
    assert [r["month"] for r in rows] == [f"2025-0{m}" for m in range(1, 7)]
    assert {r["region"] for r in rows} == {"APAC"}
    assert all(isinstance(r["revenue"], float) and isinstance(r["mrr"], float) for r in rows)
    assert all(isinstance(r["new_customers"], int) for r in rows)


def test_monthly_kpis_outside_the_data_is_empty(entry: AgentEntry, finance_url: str) -> None:
    params = {"start_month": "2030-01", "end_month": "2030-12"}
    output = call(entry, finance_url, {"query": "monthly_kpis", "params": params}).output
    assert output["rows"] == [] and output["row_count"] == 0 and output["truncated"] is False


def test_region_totals_sum_the_span(entry: AgentEntry, finance_url: str) -> None:
    params = {"start_month": "2025-01", "end_month": "2025-12"}
    output = call(entry, finance_url, {"query": "region_totals", "params": params}).output
    rows = output["rows"]
    assert len(rows) == 4
    assert [r["revenue"] for r in rows] == sorted((r["revenue"] for r in rows), reverse=True)
    span = [r for r in kpi_rows() if r["month"] >= "2025-01"]
    for total in rows:
        mine = [r for r in span if r["region"] == total["region"]]
        revenue, costs = sum(r["revenue"] for r in mine), sum(r["costs"] for r in mine)
        assert total["months"] == 12
        assert total["revenue"] == pytest.approx(revenue, abs=0.01)
        assert total["costs"] == pytest.approx(costs, abs=0.01)
        assert total["gross_margin"] == pytest.approx((revenue - costs) / revenue, abs=1e-4)
        assert total["new_customers"] == sum(r["new_customers"] for r in mine)
        assert total["churned_customers"] == sum(r["churned_customers"] for r in mine)
        assert total["ending_mrr"] == pytest.approx(mine[-1]["mrr"])
    assert {r["currency"] for r in rows} == {"EUR", "USD", "SGD", "BRL"}


def test_latest_month(entry: AgentEntry, finance_url: str) -> None:
    output = call(entry, finance_url, {"query": "latest_month"}).output
    assert output["rows"] == [
        {"month": "2025-12", "first_month": "2024-01", "months": 24, "regions": 4}
    ]


def test_regions(entry: AgentEntry, finance_url: str) -> None:
    rows = call(entry, finance_url, {"query": "regions", "params": {}}).output["rows"]
    assert [r["region"] for r in rows] == ["APAC", "EMEA", "LATAM", "NA"]


def test_usage_reports_rows_and_latency(entry: AgentEntry, finance_url: str) -> None:
    usage = call(entry, finance_url, {"query": "regions"}).usage
    assert usage["rows"] == 4 and usage["latency_ms"] >= 0


def test_the_embedded_database_is_seeded_on_first_use(
    entry: AgentEntry, isolated_settings: Path
) -> None:
    agent = ToolAgent(entry)
    assert call(agent, None, {"query": "latest_month"}).output["rows"][0]["month"] == "2025-12"
    assert (isolated_settings / "finance.db").exists()
    rows = call(agent, None, {"query": "monthly_kpis", "params": SPAN}).output["rows"]
    assert len(rows) == 96


def test_the_url_can_come_from_config(entry: AgentEntry, sqlite_url: str) -> None:
    seed_finance_db(sqlite_url)
    agent = ToolAgent(with_config(entry, database_url=sqlite_url))
    assert call(agent, None, {"query": "latest_month"}).output["row_count"] == 1


# --- Limits --------------------------------------------------------------------------------


def test_max_rows_truncates(entry: AgentEntry, finance_url: str) -> None:
    agent = ToolAgent(with_config(entry, max_rows=5))
    output = call(agent, finance_url, {"query": "monthly_kpis", "params": SPAN}).output
    assert output["row_count"] == len(output["rows"]) == 5
    assert output["truncated"] is True
    assert [r["month"] for r in output["rows"]] == ["2024-01"] * 4 + ["2024-02"]


def test_exactly_max_rows_is_not_truncated(entry: AgentEntry, finance_url: str) -> None:
    agent = ToolAgent(with_config(entry, max_rows=4))
    params = {"start_month": "2024-03", "end_month": "2024-03"}
    output = call(agent, finance_url, {"query": "monthly_kpis", "params": params}).output
    assert output["row_count"] == 4 and output["truncated"] is False


def test_max_rows_defaults_to_the_entry_limit(entry: AgentEntry, finance_url: str) -> None:
    limited = entry.model_copy(update={"limits": entry.limits.model_copy(update={"max_rows": 3})})
    output = call(limited, finance_url, {"query": "monthly_kpis", "params": SPAN}).output
    assert output["row_count"] == 3 and output["truncated"] is True


def test_output_over_max_output_bytes_is_a_limit_error(entry: AgentEntry, finance_url: str) -> None:
    small = entry.model_copy(
        update={"limits": entry.limits.model_copy(update={"max_output_bytes": 500})}
    )
    error = fails(small, finance_url, {"query": "monthly_kpis", "params": SPAN})
    assert error.kind == "limit" and not error.retryable
    assert "max_output_bytes" in str(error)


def test_a_slow_query_times_out(entry: AgentEntry, finance_url: str) -> None:
    endless = {
        "sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
        "SELECT COUNT(*) AS n FROM c"
    }
    agent = ToolAgent(with_queries(entry, endless=endless))
    request = AgentRequest(
        run_id="r",
        step_id="s",
        attempt=1,
        input={"query": "endless"},
        env={URL_ENV: finance_url},
        timeout_seconds=0.3,
    )
    with pytest.raises(AgentError) as caught:
        agent.run(request)
    assert caught.value.kind == "timeout" and caught.value.retryable
    assert "query 'endless'" in str(caught.value)


# --- Refused at construction ---------------------------------------------------------------

REFUSED = {
    "update": ("UPDATE kpi_monthly SET revenue = 0", "UPDATE"),
    "insert": ("INSERT INTO kpi_monthly (month) VALUES ('2030-01')", "INSERT"),
    "delete": ("DELETE FROM kpi_monthly", "DELETE"),
    "chained_drop": ("SELECT * FROM kpi_monthly; DROP TABLE kpi_monthly", "only one statement"),
    "chained_select": ("SELECT 1; SELECT 2", "only one statement"),
    "writing_cte": (
        "WITH gone AS (DELETE FROM kpi_monthly RETURNING *) SELECT * FROM gone", "DELETE"
    ),
    "select_into": ("SELECT * INTO stolen FROM kpi_monthly", "INTO"),
    "pragma": ("PRAGMA query_only=OFF", "PRAGMA"),
    "table_statement": ("SELECT * FROM regions UNION TABLE secrets", "'secrets'"),
    "other_table": ("SELECT * FROM secrets", "'secrets'"),
    "schema_table": ("SELECT * FROM public.kpi_monthly", "'public.kpi_monthly'"),
    "quoted_table": ('SELECT * FROM "Secrets"', "'Secrets'"),
    "joined_table": ("SELECT * FROM kpi_monthly k JOIN users u ON u.id = k.region", "'users'"),
    "comma_table": ("SELECT * FROM kpi_monthly, pg_catalog.pg_user", "'pg_catalog.pg_user'"),
    "subquery_table": (
        "SELECT * FROM kpi_monthly WHERE region IN (SELECT region FROM secrets)", "'secrets'"
    ),
    "cte_body_table": ("WITH s AS (SELECT * FROM secrets) SELECT * FROM s", "'secrets'"),
    "cte_shadowing": ("WITH secrets AS (SELECT * FROM secrets) SELECT * FROM secrets", "'secrets'"),
    "table_function": ("SELECT * FROM pg_read_file('/etc/passwd')", "'pg_read_file'"),
    "dollar_quote": ("SELECT $$ ' $$ FROM kpi_monthly", "unsupported character"),
    "bracket_name": ("SELECT * FROM [secrets]", "unsupported character"),
    "backslash": ("SELECT E'\\' FROM secrets' FROM kpi_monthly", "unsupported character"),
    "unbalanced": ("SELECT (1 FROM kpi_monthly", "unbalanced"),
    "undeclared_param": ("SELECT * FROM kpi_monthly WHERE region = :other", "':other'"),
}  # fmt: skip


@pytest.mark.parametrize(("sql", "expected"), REFUSED.values(), ids=list(REFUSED))
def test_unsafe_queries_are_refused_at_construction(
    entry: AgentEntry, sql: str, expected: str
) -> None:
    with pytest.raises(AgentError) as caught:
        ToolAgent(with_queries(entry, sneaky={"sql": sql}))
    assert caught.value.kind == "config" and not caught.value.retryable
    message = str(caught.value)
    assert "supabase-agent" in message and "query 'sneaky'" in message
    assert expected in message


def test_a_declared_but_unused_param_is_refused(entry: AgentEntry) -> None:
    query = {"sql": "SELECT * FROM regions", "params": {"region": {"type": "string"}}}
    with pytest.raises(AgentError, match="parameter 'region' is declared but"):
        ToolAgent(with_queries(entry, sneaky=query))


def test_object_params_are_refused(entry: AgentEntry) -> None:
    query = {"sql": "SELECT * FROM regions WHERE region = :r", "params": {"r": {"type": "object"}}}
    with pytest.raises(AgentError, match="parameter 'r' is of type object"):
        ToolAgent(with_queries(entry, sneaky=query))


def test_writes_are_refused_when_read_only_is_off_only_for_ddl(entry: AgentEntry) -> None:
    with pytest.raises(AgentError, match="DROP is not allowed"):
        ToolAgent(with_config(entry, read_only=False, queries={"d": {"sql": "DROP TABLE regions"}}))


def test_allowed_table_names_must_be_names(entry: AgentEntry) -> None:
    with pytest.raises(AgentError, match="allowed_tables"):
        ToolAgent(with_config(entry, allowed_tables=["kpi_monthly; DROP TABLE x"]))


def test_the_url_env_var_must_be_declared(entry: AgentEntry) -> None:
    with pytest.raises(AgentError, match="OTHER_URL is not declared") as caught:
        ToolAgent(with_config(entry, database_url_env="OTHER_URL"))
    assert caught.value.kind == "config"


ACCEPTED = [
    "SELECT EXTRACT(YEAR FROM CURRENT_DATE) AS y, SUBSTRING(month FROM 1 FOR 4) FROM kpi_monthly",
    "SELECT * FROM kpi_monthly WHERE region IS DISTINCT FROM 'x'",
    "SELECT * FROM public.regions",
    "SELECT * FROM (SELECT region FROM regions) AS r, kpi_monthly k WHERE k.region = r.region",
    "WITH a AS (SELECT * FROM regions), b AS (SELECT * FROM a) SELECT * FROM b;",
    "SELECT month::text, 'it''s; fine -- really' AS note FROM kpi_monthly -- ; DROP TABLE x",
    'SELECT /* FROM secrets; */ region FROM "kpi_monthly"',
]


@pytest.mark.parametrize("sql", ACCEPTED)
def test_safe_queries_are_accepted(entry: AgentEntry, sql: str) -> None:
    allowed = ["kpi_monthly", "regions", "public.regions"]
    ToolAgent(with_config(entry, allowed_tables=allowed, queries={"ok": {"sql": sql}}))


# --- Refused at execution ------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE kpi_monthly SET revenue = 0",
        "DELETE FROM kpi_monthly",
        "INSERT INTO regions (region, name, currency) VALUES ('X', 'X', 'XXX')",
        "DROP TABLE kpi_monthly",
    ],
)
def test_read_only_execution_cannot_write(finance_url: str, sql: str) -> None:
    with pytest.raises(AgentError) as caught:
        execute_query(finance_url, sql, {}, read_only=True, allowed_tables=TABLES)
    assert caught.value.kind == "client" and not caught.value.retryable
    assert kpi_count(finance_url) == 96
    lowest_sql = "SELECT MIN(revenue) AS low FROM kpi_monthly"
    lowest = execute_query(finance_url, lowest_sql, {}, allowed_tables=TABLES).rows
    assert lowest[0]["low"] == pytest.approx(min(r["revenue"] for r in kpi_rows()))


def test_read_only_off_allows_declared_writes(entry: AgentEntry, finance_url: str) -> None:
    touch = {
        "sql": "UPDATE kpi_monthly SET costs = costs WHERE region = :region",
        "params": {"region": {"type": "string", "required": True}},
    }
    agent = ToolAgent(with_config(entry, read_only=False, queries={"touch": touch}))
    output = call(agent, finance_url, {"query": "touch", "params": {"region": "NA"}}).output
    assert output["affected_rows"] == 24 and output["rows"] == []


# --- Inputs --------------------------------------------------------------------------------

BAD_PARAMS = {
    "quote_in_enum": ({**SPAN, "region": "EMEA' OR '1'='1"}, "parameter 'region' must be one of"),
    "drop_in_month": (
        {"start_month": "2024-01'; DROP TABLE kpi_monthly; --", "end_month": "2025-12"},
        "parameter 'start_month' must match pattern",
    ),
    "unexpected_key": ({**SPAN, "sql": "DROP TABLE kpi_monthly"}, "unknown parameter 'sql'"),
    "list_value": ({**SPAN, "region": ["EMEA", "NA"]}, "parameter 'region' must be of type string"),
    "dict_value": ({**SPAN, "region": {"$ne": ""}}, "parameter 'region' must be of type string"),
    "number_value": ({**SPAN, "end_month": 202512}, "parameter 'end_month' must be of type string"),
    "missing": ({"end_month": "2025-12"}, "missing required parameter 'start_month'"),
}  # fmt: skip


@pytest.mark.parametrize(("params", "expected"), BAD_PARAMS.values(), ids=list(BAD_PARAMS))
def test_bad_params_fail_validation(
    entry: AgentEntry, finance_url: str, params: dict[str, Any], expected: str
) -> None:
    error = fails(entry, finance_url, {"query": "monthly_kpis", "params": params})
    assert error.kind == "validation" and not error.retryable
    assert "query 'monthly_kpis'" in str(error)
    assert expected in str(error)
    assert kpi_count(finance_url) == 96


@pytest.mark.parametrize(
    "region",
    [
        "EMEA' OR '1'='1",
        "x'; DROP TABLE kpi_monthly; --",
        'EMEA" OR 1=1 --',
        "' UNION SELECT name, currency, 0 FROM regions --",
    ],
)
def test_free_text_params_are_bound_literally(
    entry: AgentEntry, finance_url: str, region: str
) -> None:
    agent = ToolAgent(with_queries(entry, by_region=FREE_TEXT_QUERY))
    output = call(agent, finance_url, {"query": "by_region", "params": {"region": region}}).output
    assert output["rows"] == [] and output["row_count"] == 0
    assert kpi_count(finance_url) == 96
    emea = call(agent, finance_url, {"query": "by_region", "params": {"region": "EMEA"}})
    assert emea.output["row_count"] == 24


def test_a_nul_character_is_refused(entry: AgentEntry, finance_url: str) -> None:
    agent = ToolAgent(with_queries(entry, by_region=FREE_TEXT_QUERY))
    error = fails(agent, finance_url, {"query": "by_region", "params": {"region": "EMEA\x00"}})
    assert error.kind == "validation" and "parameter 'region'" in str(error)


def test_unknown_query_lists_the_known_ones(entry: AgentEntry, finance_url: str) -> None:
    error = fails(entry, finance_url, {"query": "drop_everything"})
    assert error.kind == "validation" and not error.retryable
    assert "unknown query 'drop_everything'" in str(error)
    assert "latest_month, monthly_kpis, region_totals, regions" in str(error)


@pytest.mark.parametrize(
    "value",
    [
        {"query": "latest_month", "sql": "DROP TABLE kpi_monthly"},
        {"query": "latest_month", "params": ["2024-01"]},
        {"params": {}},
        "latest_month",
        None,
    ],
)
def test_malformed_input_fails_validation(entry: AgentEntry, value: Any) -> None:
    error = fails(entry, None, value)
    assert error.kind == "validation"


def test_the_validator_checks_step_inputs() -> None:
    check = agent_input_checks()["supabase-agent"]
    assert check is not None
    assert check({"query": "latest_month", "params": {}}) == []
    assert check({"query": "latest_month", "sql": "x"}) == [(("sql",), "unknown input 'sql'")]


# --- Database errors -----------------------------------------------------------------------


def test_an_unreachable_postgres_is_a_retryable_server_error(entry: AgentEntry) -> None:
    url = "postgresql+psycopg2://finance:hunter2-secret@127.0.0.1:1/finance"
    error = fails(entry, url, {"query": "latest_month"})
    assert error.kind == "server" and error.retryable
    assert "hunter2-secret" not in str(error)


def test_an_unopenable_sqlite_file_is_a_server_error(entry: AgentEntry, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-folder' / 'finance.db'}"
    error = fails(entry, url, {"query": "latest_month"})
    assert error.kind == "server" and error.retryable


def test_an_sql_error_is_a_client_error(entry: AgentEntry, sqlite_url: str) -> None:
    sqlite3.connect(make_url(sqlite_url).database or "").close()  # an empty database file
    error = fails(entry, sqlite_url, {"query": "latest_month"})
    assert error.kind == "client" and not error.retryable
    assert "query 'latest_month' failed" in str(error) and "kpi_monthly" in str(error)


def test_a_bad_url_is_a_config_error(entry: AgentEntry) -> None:
    error = fails(entry, "not a url", {"query": "latest_month"})
    assert error.kind == "config" and not error.retryable


def test_json_safe_values() -> None:
    from datetime import date, datetime
    from decimal import Decimal
    from uuid import UUID

    assert json_safe(Decimal("12.50")) == 12.5
    assert json_safe(date(2025, 1, 31)) == "2025-01-31"
    assert json_safe(datetime(2025, 1, 31, 12, 0)) == "2025-01-31T12:00:00"
    assert json_safe(b"\x01\xff") == "01ff"
    assert json_safe(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert json_safe(Decimal("NaN")) is None
    assert json_safe([Decimal("1"), {"a": date(2024, 2, 1)}]) == [1.0, {"a": "2024-02-01"}]


# --- The database is the boundary ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///{data}/baton.db",
        "sqlite:///{data}/../baton-data/./baton.db",
    ],
)
def test_batons_own_sqlite_database_is_refused(
    entry: AgentEntry, isolated_settings: Path, url: str
) -> None:
    error = fails(entry, url.format(data=isolated_settings), {"query": "regions"})
    assert error.kind == "config" and "Baton's own database" in str(error)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://tool:pw@localhost/baton",
        "postgres://tool:pw@127.0.0.1:5432/baton",
        "postgresql+psycopg2://other@[::1]/baton",
    ],
)
def test_batons_own_postgres_database_is_refused(
    entry: AgentEntry, isolated_settings: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("BATON_DATABASE_URL", "postgresql+psycopg2://baton:s3cret@127.0.0.1/baton")
    get_settings.cache_clear()
    error = fails(entry, url, {"query": "regions"})
    assert error.kind == "config" and "Baton's own database" in str(error)
    assert "s3cret" not in str(error) and "tool:pw" not in str(error)


@pytest.mark.postgres
def test_a_superuser_url_is_refused(entry: AgentEntry, pg_url: str) -> None:
    seed_finance_db(pg_url)
    error = fails(entry, pg_url, {"query": "regions"})
    assert error.kind == "config" and not error.retryable
    assert "logs in as postgres" in str(error) and "docs/agents.md" in str(error)


@pytest.mark.postgres
def test_the_entry_role_is_set_for_its_queries(entry: AgentEntry, pg_url: str) -> None:
    seed_finance_db(pg_url)
    with tool_roles(pg_url, TABLES) as roles:
        agent = ToolAgent(with_config(entry, role=roles.table_role))
        assert call(agent, roles.login_url, {"query": "regions"}).output["row_count"] == 4
        error = fails(entry, roles.login_url, {"query": "regions"})  # no role: no grants
        assert error.kind == "client" and "permission denied" in str(error)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"role": "reader; DROP TABLE x"}, "role: not a PostgreSQL name"),
        ({"schema": 'public", "secret'}, "schema: not a PostgreSQL name"),
        ({"role": "x" * 64}, "role: not a PostgreSQL name"),
    ],
)
def test_role_and_schema_must_be_names(
    entry: AgentEntry, changes: dict[str, Any], expected: str
) -> None:
    with pytest.raises(AgentError, match=expected) as caught:
        ToolAgent(with_config(entry, **changes))
    assert caught.value.kind == "config"


def test_only_queries_that_change_data_run_read_write(entry: AgentEntry) -> None:
    queries = {
        "read": {"sql": "SELECT region FROM regions"},
        "write": {"sql": "UPDATE regions SET name = name"},
    }
    agent = ToolAgent(with_config(entry, read_only=False, queries=queries))
    assert agent.config.writes("write") and not agent.config.writes("read")
    assert not ToolAgent(entry).config.writes("regions")


def test_a_select_of_an_entry_that_may_write_cannot_write(
    entry: AgentEntry, finance_url: str
) -> None:
    queries = {"read": {"sql": "SELECT region FROM regions"}}
    agent = ToolAgent(with_config(entry, read_only=False, queries=queries))
    assert call(agent, finance_url, {"query": "read"}).output["row_count"] == 4
    sneaky = "WITH d AS (DELETE FROM regions RETURNING *) SELECT * FROM d"
    with pytest.raises(AgentError):
        execute_query(finance_url, sneaky, {}, read_only=True, allowed_tables=TABLES)
    assert kpi_count(finance_url) == 96
