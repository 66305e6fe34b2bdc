"""SQLite keeps tool queries in bounds by itself: a read-only file and the authorizer.

Every attack here goes straight to ``execute_query``, past the static check, as a hostile
entry author's SQL would if the check missed it. Each must be refused by SQLite, change
nothing, and read nothing of ``api_tokens`` (the table standing in for Baton's secrets).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent_resources.base import AgentError
from agent_resources.finance_data import seed_finance_db
from agent_resources.sql_exec import QueryResult, execute_query
from agent_resources.sql_sqlite import SAFE_FUNCTIONS, SqlitePolicy, sqlite_uri

TABLES = ["kpi_monthly", "regions"]
TOKEN = "tok-5ecret-a9f3c2"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A seeded finance file with an ``api_tokens`` table, a view over it and a trigger."""
    path = tmp_path / "finance.db"
    seed_finance_db(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE api_tokens (id INTEGER PRIMARY KEY, token TEXT)")
        conn.execute("INSERT INTO api_tokens (token) VALUES (?)", (TOKEN,))
        conn.execute("CREATE VIEW token_view AS SELECT token AS region FROM api_tokens")
    conn.close()
    return path


def run(path: Path, sql: str, **options: object) -> QueryResult:
    options.setdefault("allowed_tables", TABLES)
    return execute_query(f"sqlite:///{path}", sql, {}, **options)  # type: ignore[arg-type]


def state(path: Path) -> tuple[int, int, int, list[str]]:
    """Rows of each table, and every table name: what an attack must leave as it was."""
    with sqlite3.connect(path) as conn:
        counts = [
            conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in (*TABLES, "api_tokens")
        ]
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_schema ORDER BY name")]
    conn.close()
    return counts[0], counts[1], counts[2], names


def refused(path: Path, sql: str, **options: object) -> AgentError:
    before = state(path)
    with pytest.raises(AgentError) as caught:
        run(path, sql, **options)
    assert state(path) == before
    assert TOKEN not in str(caught.value)
    return caught.value


ATTACKS = {
    # Reading a table the entry does not allow, however it is reached.
    "nested_comment_union": (
        "SELECT region FROM regions /* /* */ UNION SELECT token FROM api_tokens -- */",
        "prohibited",
    ),
    "plain_other_table": ("SELECT token FROM api_tokens", "prohibited"),
    "subquery": (
        "SELECT region FROM regions WHERE region IN (SELECT token FROM api_tokens)",
        "prohibited",
    ),
    "scalar_subquery": ("SELECT (SELECT token FROM api_tokens) AS region", "prohibited"),
    "view_over_secret": ("SELECT region FROM token_view", "prohibited"),
    "cte_over_secret": (
        "WITH t AS (SELECT token FROM api_tokens) SELECT token FROM t", "prohibited"
    ),
    "count_star": ("SELECT COUNT(*) FROM api_tokens", "not authorized"),
    "rowid": ("SELECT rowid FROM api_tokens", "prohibited"),
    "schema_table": ("SELECT sql FROM sqlite_schema", "prohibited"),
    "pragma_function": ("SELECT name FROM pragma_table_info('api_tokens')", "not authorized"),
    "json_each": ("SELECT value FROM json_each('[1]')", "vtable constructor failed"),
    "attached_name": ("SELECT token FROM main.api_tokens", "prohibited"),
    # More than one statement: sqlite3 compiles one and refuses the rest before running.
    "second_statement": ("SELECT 1; DELETE FROM kpi_monthly", "one statement"),
    "commit_then_delete": ("SELECT 1; COMMIT; DELETE FROM kpi_monthly", "one statement"),
    "delete_first": ("DELETE FROM kpi_monthly; SELECT 1", "not authorized"),
    # Writes, transactions and everything that is not a plain read.
    "delete": ("DELETE FROM kpi_monthly", "not authorized"),
    "update": ("UPDATE kpi_monthly SET revenue = 0", "not authorized"),
    "writing_cte": ("WITH d AS (SELECT 1) DELETE FROM kpi_monthly", "not authorized"),
    "returning": ("DELETE FROM regions RETURNING region", "not authorized"),
    "insert_select": ("INSERT INTO regions SELECT * FROM regions", "not authorized"),
    "commit": ("COMMIT", "not authorized"),
    "begin": ("BEGIN IMMEDIATE", "not authorized"),
    "savepoint": ("SAVEPOINT s", "not authorized"),
    "attach": ("ATTACH DATABASE 'elsewhere.db' AS other", "not authorized"),
    "vacuum_into": ("VACUUM INTO 'copy.db'", "authorization denied"),
    "pragma_writable_schema": ("PRAGMA writable_schema = ON", "not authorized"),
    "pragma_query_only": ("PRAGMA query_only = OFF", "not authorized"),
    "pragma_read": ("PRAGMA table_info(api_tokens)", "not authorized"),
    "load_extension": ("SELECT load_extension('/tmp/evil.so')", "not authorized"),
    "create_table": ("CREATE TABLE stolen AS SELECT * FROM regions", "not authorized"),
    "create_temp": ("CREATE TEMP TABLE t (x)", "not authorized"),
    "drop": ("DROP TABLE kpi_monthly", "not authorized"),
    "alter": ("ALTER TABLE regions RENAME TO r2", "not authorized"),
    "trigger": (
        "CREATE TRIGGER t AFTER INSERT ON regions BEGIN DELETE FROM api_tokens; END",
        "not authorized",
    ),
    "reindex": ("REINDEX", "not authorized"),
    "analyze": ("ANALYZE", "not authorized"),
    "unlisted_function": ("SELECT randomblob(10) AS region", "not authorized"),
    "huge_string": (
        "SELECT replace(printf('%.*c', 10000000, 'x'), 'x', 'xxxxxxxxxx') AS region", "too big"
    ),
}  # fmt: skip


@pytest.mark.parametrize(("sql", "expected"), ATTACKS.values(), ids=list(ATTACKS))
def test_attacks_are_refused_and_change_nothing(db: Path, sql: str, expected: str) -> None:
    error = refused(db, sql)
    assert error.kind == "client" and not error.retryable
    assert expected in str(error)


def test_attached_or_copied_files_are_never_created(db: Path) -> None:
    refused(db, f"ATTACH DATABASE '{db.parent / 'new.db'}' AS other")
    refused(db, f"VACUUM INTO '{db.parent / 'copy.db'}'")
    assert not (db.parent / "new.db").exists() and not (db.parent / "copy.db").exists()


def test_the_view_is_refused_even_when_allowed_by_name(db: Path) -> None:
    refused(db, "SELECT region FROM token_view", allowed_tables=[*TABLES, "token_view"])


def test_an_endless_query_is_interrupted_at_the_deadline(db: Path) -> None:
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"
    error = refused(db, endless + " ORDER BY x", timeout_seconds=0.2)
    assert error.kind == "timeout" and error.retryable


def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(AgentError) as caught:
        run(path, "SELECT 1")
    assert caught.value.kind == "server"
    assert not path.exists()


# --- What stays allowed --------------------------------------------------------------------


READS = [
    "SELECT COUNT(*) AS n FROM kpi_monthly",
    "SELECT COUNT(*) AS n FROM (SELECT region FROM regions)",
    "WITH r AS (SELECT region FROM regions) SELECT COUNT(*) AS n FROM r",
    "SELECT k.region, SUM(k.revenue) AS n FROM kpi_monthly k JOIN regions r USING (region) "
    "GROUP BY k.region",
    "SELECT main.regions.region AS n FROM main.regions",
    "SELECT ROW_NUMBER() OVER (ORDER BY region) AS n FROM regions",
    "SELECT strftime('%Y', 'now') AS n, coalesce(NULL, 1), round(1.25, 1), upper('a')",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3) SELECT x AS n FROM c",
]


@pytest.mark.parametrize("sql", READS)
def test_reads_of_allowed_tables_work(db: Path, sql: str) -> None:
    assert run(db, sql).rows


def test_a_declared_write_changes_only_allowed_tables(db: Path) -> None:
    done = run(db, "UPDATE kpi_monthly SET costs = costs + 0 WHERE region = 'NA'", read_only=False)
    assert done.affected_rows == 24
    error = refused(db, "DELETE FROM api_tokens", read_only=False)
    assert "not authorized" in str(error)
    error = refused(db, "UPDATE regions SET name = (SELECT token FROM api_tokens)", read_only=False)
    assert "prohibited" in str(error)
    refused(db, "UPDATE regions SET name = 'x'; DELETE FROM kpi_monthly", read_only=False)


def test_a_write_fired_trigger_is_held_to_the_same_tables(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER wipe AFTER UPDATE ON regions BEGIN DELETE FROM api_tokens; END"
        )
    conn.close()
    refused(db, "UPDATE regions SET name = name", read_only=False)


def test_the_policy_denies_what_it_does_not_know() -> None:
    policy = SqlitePolicy(["Kpi_Monthly", "main.regions", "public.other"], False, ["secret"])
    assert policy.tables == {"kpi_monthly", "regions"}
    ok, deny = sqlite3.SQLITE_OK, sqlite3.SQLITE_DENY
    assert policy.authorize(sqlite3.SQLITE_READ, "KPI_MONTHLY", "revenue", "main", None) == ok
    assert policy.authorize(sqlite3.SQLITE_READ, "regions", "region", "temp", None) == deny
    assert policy.authorize(sqlite3.SQLITE_READ, "secret", "", None, None) == deny
    assert policy.authorize(sqlite3.SQLITE_READ, "a_cte", "", None, None) == ok
    assert policy.authorize(sqlite3.SQLITE_INSERT, "regions", None, "main", None) == deny
    assert policy.authorize(sqlite3.SQLITE_FUNCTION, None, "load_extension", None, None) == deny
    assert policy.authorize(sqlite3.SQLITE_FUNCTION, None, "COUNT", None, None) == ok
    assert policy.authorize(sqlite3.SQLITE_PRAGMA, "query_only", None, None, None) == deny
    assert policy.authorize(999, None, None, None, None) == deny
    assert "load_extension" not in SAFE_FUNCTIONS


def test_the_uri_is_read_only_and_quoted(tmp_path: Path) -> None:
    assert sqlite_uri(str(tmp_path / "a?b#c.db"), writes=False).endswith("/a%3Fb%23c.db?mode=ro")
    assert sqlite_uri("x.db", writes=True).endswith("/x.db?mode=rw")


SQLITE_BIG = {
    "printf": "SELECT printf('%.*c', 15000000, 'x') AS big FROM kpi_monthly",
    "replace": "SELECT replace(printf('%.*c', 2000000, '0'), '0', 'zz') AS b FROM kpi_monthly",
    "group-concat": "SELECT group_concat(printf('%.*c', 100000, 'x')) AS big FROM kpi_monthly",
}


@pytest.mark.parametrize("sql", SQLITE_BIG.values(), ids=list(SQLITE_BIG))
def test_rows_too_big_to_take_in_are_refused_as_they_are_read(db: Path, sql: str) -> None:
    with pytest.raises(AgentError) as caught:
        run(db, sql, max_bytes=1_000_000)
    assert caught.value.kind == "limit" and "larger than 1000000 bytes" in str(caught.value)
