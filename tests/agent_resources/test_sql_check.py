"""The static check: the early error when an entry is validated, reading text as Postgres does.

It is not the boundary (test_sql_sqlite.py and test_sql_postgres.py show the databases refuse
the same attacks on their own); these tests pin that what it sees is what both databases see.
"""

from __future__ import annotations

import pytest

from agent_resources.sql_check import QuerySpec, check_query, tokenize

ALLOWED = {"kpi_monthly", "regions"}


def check(sql: str, *, read_only: bool = True) -> bool:
    return check_query(QuerySpec(sql=sql), read_only=read_only, allowed_tables=ALLOWED)


REFUSED = {
    # Comments Postgres and SQLite end in different places.
    "nested_hides_union": (
        "SELECT region FROM regions /* /* */ -- */ UNION SELECT token FROM api_tokens",
        "inside a /* comment",
    ),
    "nested_plain": ("SELECT 1 /* a /* b */ c */ FROM regions", "inside a /* comment"),
    "nested_after_stars": ("SELECT 1 /**/ /* /**/ */ FROM regions", "inside a /* comment"),
    "unterminated": ("SELECT region FROM regions /* never closed", "unterminated"),
    "unterminated_nested": ("SELECT 1 /* /* */", "inside a /* comment"),
    "carriage_return_ends_comment": (
        "SELECT region FROM regions -- \r UNION SELECT token FROM api_tokens", "'api_tokens'"
    ),
    # Escapes and characters whose meaning depends on the dialect or the settings.
    "unicode_ident": ('SELECT * FROM U&"api\\005ftokens"', "U& escapes"),
    "unicode_ident_lower": ("SELECT u&'\\0041' FROM regions", "U& escapes"),
    "unicode_function": ('SELECT U&"set\\005fconfig"(\'role\', \'x\', true)', "U& escapes"),
    "e_string": ("SELECT E'\\'; DELETE FROM x; --' FROM regions", "backslash"),
    "standard_string_backslash": ("SELECT 'a\\' FROM regions", "backslash"),
    "dollar": ("SELECT $q$ x $q$ FROM regions", "unsupported character '$'"),
    "dollar_param": ("SELECT * FROM regions WHERE region = $1", "unsupported character '$'"),
    "no_break_space": ("SELECT\u00a0region FROM regions", "unsupported character"),
    "line_separator": ("SELECT region FROM regions\u2028UNION SELECT 1", "unsupported character"),
    "non_ascii_word": ("SELECT régión FROM regions", "unsupported character"),
    "unterminated_string": ("SELECT 'abc FROM regions", "unsupported character"),
    "unterminated_ident": ('SELECT "abc FROM regions', "unsupported character"),
    # Statements that are not one read.
    "commit_delete": ("SELECT 1; COMMIT; DELETE FROM kpi_monthly", "only one statement"),
    "rollback": ("SELECT 1; ROLLBACK", "only one statement"),
    "end": ("END; DELETE FROM kpi_monthly", "only one statement"),
    "set_transaction": ("SET TRANSACTION READ WRITE", "not SET"),
    "session_characteristics": ("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "not SET"),
    "do_block": ("DO 'BEGIN END'", "not DO"),
    "copy": ("COPY kpi_monthly TO STDOUT", "COPY"),
    "for_share": ("SELECT * FROM regions FOR SHARE", "FOR SHARE locks rows"),
    "for_key_share": ("SELECT * FROM regions FOR KEY SHARE", "FOR KEY locks rows"),
    "for_no_key_update": ("SELECT * FROM regions FOR NO KEY UPDATE", "FOR NO locks rows"),
    "for_update": ("SELECT * FROM regions FOR UPDATE", "FOR UPDATE locks rows"),
    "writable_cte": ("WITH d AS (DELETE FROM regions RETURNING *) SELECT * FROM d", "DELETE"),
    # Functions that run SQL from text, reach files or the server, wait, or change settings.
    "set_config": (
        "SELECT set_config('default_transaction_read_only', 'off', false)", "'set_config'"
    ),
    "set_config_qualified": ("SELECT pg_catalog.set_config('role', 'x', true)", "'set_config'"),
    "set_config_quoted": ('SELECT "SET_CONFIG"(\'role\', \'x\', true)', "'set_config'"),
    "set_config_comment": ("SELECT set_config /* x */ ('role', 'x', true)", "'set_config'"),
    "query_to_xml": (
        "SELECT query_to_xml('delete from regions', true, true, '')", "'query_to_xml'"
    ),
    "table_to_xml": ("SELECT table_to_xml('api_tokens', true, true, '')", "'table_to_xml'"),
    "cursor_to_xml": ("SELECT cursor_to_xml('c', 1, true, true, '')", "'cursor_to_xml'"),
    "ts_stat": ("SELECT * FROM regions WHERE EXISTS (SELECT ts_stat('select 1'))", "'ts_stat'"),
    "dblink": ("SELECT dblink_exec('dbname=x', 'delete from regions')", "'dblink_exec'"),
    "lo_import": ("SELECT lo_import('/etc/passwd')", "'lo_import'"),
    "lo_export": ("SELECT lo_export(1, '/tmp/x')", "'lo_export'"),
    "pg_read_file": ("SELECT pg_read_file('/etc/passwd')", "'pg_read_file'"),
    "pg_ls_dir": ("SELECT pg_ls_dir('/')", "'pg_ls_dir'"),
    "pg_sleep": ("SELECT pg_sleep(60)", "'pg_sleep'"),
    "pg_sleep_for": ("SELECT pg_sleep_for('1 minute')", "'pg_sleep_for'"),
    "advisory_lock": ("SELECT pg_advisory_lock(1)", "'pg_advisory_lock'"),
    "terminate": ("SELECT pg_terminate_backend(1)", "'pg_terminate_backend'"),
    "nextval": ("SELECT nextval('s')", "'nextval'"),
    "load_extension": ("SELECT load_extension('/tmp/evil.so')", "'load_extension'"),
}  # fmt: skip


@pytest.mark.parametrize(("sql", "expected"), REFUSED.values(), ids=list(REFUSED))
def test_refused(sql: str, expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        check(sql)
    assert expected in str(caught.value)


def test_offsets_are_named() -> None:
    with pytest.raises(ValueError, match=r"offset 30"):
        tokenize("SELECT region FROM regions /* /* */ */")
    with pytest.raises(ValueError, match=r"offset 6"):
        tokenize("SELECT\u00a0region")


ACCEPTED = [
    "SELECT region /* a comment; with FROM api_tokens */ FROM regions",
    "SELECT region FROM regions /**/",
    "SELECT region FROM regions /*/ still a comment */",
    "SELECT region FROM regions -- trailing /* not a block",
    "SELECT 'é; /* not a comment */' AS note FROM regions",
    'SELECT "Région" FROM regions',
    "SELECT 1 FROM regions WHERE region = 'a' /* x */ -- y",
    "SELECT SUBSTRING(month FROM 1 FOR 4) AS y FROM kpi_monthly",
    "SELECT COUNT(*) FROM regions",
]


@pytest.mark.parametrize("sql", ACCEPTED)
def test_accepted(sql: str) -> None:
    assert check(sql) is False


def test_comments_are_left_out_as_postgres_ends_them() -> None:
    tokens = tokenize("SELECT /* a */ 1 -- b\r+ 2")
    assert [t.text for t in tokens] == ["SELECT", "1", "+", "2"]


WRITES = {
    "SELECT region FROM regions": False,
    "UPDATE kpi_monthly SET costs = 0": True,
    "INSERT INTO regions (region) VALUES ('x')": True,
    "DELETE FROM regions": True,
    "WITH d AS (DELETE FROM regions RETURNING *) SELECT * FROM d": True,
}


@pytest.mark.parametrize(("sql", "writes"), WRITES.items(), ids=list(WRITES))
def test_a_query_that_changes_data_says_so(sql: str, writes: bool) -> None:
    assert check(sql, read_only=False) is writes
