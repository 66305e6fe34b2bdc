"""Static checks of a declared SQL query: one statement, allowed tables, declared parameters.

A small tokenizer, not a parser, and not the boundary: the database keeps a query read-only and
its tables limited (``sql_sqlite``, ``sql_postgres``). This check is the early, friendly error
when an entry is validated. Where SQLite and PostgreSQL would read the text differently (nested
block comments, dollar quotes, ``U&`` escapes, backslashes, characters outside ASCII between
tokens) it refuses rather than guesses, so what it sees is what both databases see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text

from orchestration_defs.language.models import Identifier, InputSpec


class QuerySpec(BaseModel):
    """One named query: its SQL (with ``:name`` bind parameters) and its typed parameters."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    sql: str = Field(min_length=1)
    params: dict[Identifier, InputSpec] = Field(default_factory=dict)


# PostgreSQL's whitespace and line ends (its lexer ends a ``--`` comment at \n or \r); Python's
# \s would also take Unicode spaces, which PostgreSQL reads as part of an identifier.
_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\n\r\f\v]+)
    |(?P<comment>--[^\n\r]*)
    |(?P<uescape>[uU]&['"])
    |(?P<string>'(?:[^']|'')*')
    |(?P<ident>"(?:[^"]|"")*")
    |(?P<cast>::)
    |(?P<param>:[A-Za-z_][A-Za-z0-9_]*)
    |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)
    |(?P<punct>[(),.;*+\-/<>=%|&!~^@#?:])
    """,
    re.VERBOSE,
)
_BLOCK_MARK = re.compile(r"/\*|\*/")
# Functions that run SQL given as text, reach files, large objects, other connections or the
# server, take locks, wait, or change settings (``set_config`` can even switch the role back):
# refused by name; the database role is what denies them (docs/agents.md).
_REFUSED_FUNCTIONS = frozenset(
    {"set_config", "ts_stat", "ts_rewrite", "xpath_table", "nextval", "setval", "pg_notify",
     "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
     "pg_promote", "pg_switch_wal", "pg_stat_file", "pg_logdir_ls", "pg_export_snapshot",
     "pg_import_system_collations", "load_extension", "readfile", "writefile", "edit",
     "fts3_tokenizer"}
)  # fmt: skip
_REFUSED_FUNCTION_PREFIXES = (
    "dblink", "lo_", "pg_read_", "pg_ls_", "pg_file_", "pg_sleep", "pg_advisory",
    "pg_try_advisory", "query_to_", "cursor_to_", "table_to_", "schema_to_", "database_to_",
    "pg_logical_", "pg_replication_", "pg_create_", "pg_drop_", "pg_copy_",
)  # fmt: skip
_DATA_CHANGING = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})
_ROW_LOCK_NEXT = frozenset({"UPDATE", "SHARE", "NO", "KEY"})

_QUERY_STARTS = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})
_READ_STARTS = frozenset({"SELECT", "WITH"})
_WRITE_STARTS = frozenset({"INSERT", "UPDATE", "DELETE"})
_WRITE_WORDS = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "INTO"})
_NEVER_WORDS = frozenset(
    {"DROP", "ALTER", "CREATE", "TRUNCATE", "GRANT", "REVOKE", "ATTACH", "DETACH", "PRAGMA",
     "VACUUM", "COPY", "REINDEX", "CALL", "EXECUTE"}
)  # fmt: skip
_FROM_LIST_ENDS = frozenset(
    {"WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "UNION", "INTERSECT", "EXCEPT",
     "WINDOW", "FETCH", "FOR", "RETURNING", "SET", "SELECT", "VALUES"}
)  # fmt: skip


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str

    @property
    def keyword(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    @property
    def is_name(self) -> bool:
        return self.kind in ("word", "ident")

    def is_punct(self, char: str) -> bool:
        return self.kind == "punct" and self.text == char


@dataclass
class _Frame:
    query: bool
    in_from: bool = False


@dataclass(frozen=True)
class _Cte:
    name: str
    body_end: int


def tokenize(sql: str) -> list[_Token]:
    """The SQL's tokens, comments and whitespace left out.

    Raises:
        ValueError: the SQL holds a character, literal or comment whose meaning depends on the
            dialect, naming its offset.
    """
    tokens, index = [], 0
    while index < len(sql):
        if sql.startswith("/*", index):
            index = _block_comment_end(sql, index)
            continue
        match = _TOKEN.match(sql, index)
        if match is None:
            raise ValueError(
                f"unsupported character {sql[index]!r} at offset {index} (only ASCII outside "
                "quotes; no $, [], `, \\ or unterminated quotes)"
            )
        kind, value = match.lastgroup or "punct", match.group()
        if kind == "uescape":
            raise ValueError(f"U& escapes are not supported (offset {index})")
        if kind == "string" and "\\" in value:
            raise ValueError(f"unsupported character: a backslash in a string (offset {index})")
        index = match.end()
        if kind not in ("space", "comment"):
            tokens.append(_Token(kind, value))
    return tokens


def _block_comment_end(sql: str, start: int) -> int:
    """The offset after the ``/* ... */`` comment opening at ``start``, read as PostgreSQL does.

    PostgreSQL nests block comments and SQLite does not, so a comment inside a comment would
    hide different text from each: it is refused.
    """
    depth, index = 0, start
    while (mark := _BLOCK_MARK.search(sql, index)) is not None:
        depth += 1 if mark.group() == "/*" else -1
        if depth > 1:
            raise ValueError(
                f"a /* comment inside a /* comment (offset {mark.start()}): PostgreSQL nests "
                "them and SQLite does not"
            )
        if depth == 0:
            return mark.end()
        index = mark.end()
    raise ValueError(f"unterminated /* comment (offset {start})")


def _name_part(token: _Token) -> str:
    if token.kind == "ident":
        return token.text[1:-1].replace('""', '"')
    return token.text.lower()


def _statement_tokens(sql: str, read_only: bool) -> list[_Token]:
    tokens = tokenize(sql)
    while tokens and tokens[-1].is_punct(";"):
        tokens.pop()
    if not tokens:
        raise ValueError("the SQL is empty")
    if any(t.is_punct(";") for t in tokens):
        raise ValueError("only one statement is allowed (found ';' between statements)")
    never = sorted({t.keyword for t in tokens} & _NEVER_WORDS)
    if never:
        raise ValueError(f"{never[0]} is not allowed in a tool query")
    first = tokens[0].text.upper()
    if read_only and tokens[0].keyword not in _READ_STARTS:
        raise ValueError(f"must be a SELECT or WITH statement (read_only is on), not {first}")
    if tokens[0].keyword not in _READ_STARTS | _WRITE_STARTS:
        raise ValueError(f"must be a SELECT, WITH, INSERT, UPDATE or DELETE statement, not {first}")
    if read_only:
        _refuse_row_locks(tokens)
    writes = sorted({t.keyword for t in tokens} & _WRITE_WORDS) if read_only else []
    if writes:
        raise ValueError(f"{writes[0]} can write, and read_only is on")
    _refuse_functions(tokens)
    return tokens


def _refuse_row_locks(tokens: list[_Token]) -> None:
    for index, token in enumerate(tokens[:-1]):
        following = tokens[index + 1].keyword
        if token.keyword == "FOR" and following in _ROW_LOCK_NEXT:
            raise ValueError(f"FOR {following} locks rows, which a read-only transaction refuses")


def _refuse_functions(tokens: list[_Token]) -> None:
    for index, token in enumerate(tokens[:-1]):
        if not (token.is_name and tokens[index + 1].is_punct("(")):
            continue
        name = _name_part(token).lower()
        if name in _REFUSED_FUNCTIONS or name.startswith(_REFUSED_FUNCTION_PREFIXES):
            raise ValueError(
                f"function '{name}' is not allowed in a tool query (it runs SQL given as text, "
                "reaches files or the server, waits, or changes settings)"
            )


def _closing(tokens: list[_Token], start: int) -> int:
    """Index of the parenthesis closing the one at ``start``."""
    depth = 0
    for index in range(start, len(tokens)):
        if tokens[index].is_punct("("):
            depth += 1
        elif tokens[index].is_punct(")"):
            depth -= 1
            if depth == 0:
                return index
    raise ValueError("unbalanced parentheses")


def _top_level_ctes(tokens: list[_Token]) -> tuple[list[_Cte], bool]:
    """The statement's leading ``WITH`` list, and whether it is ``RECURSIVE``."""
    if tokens[0].keyword != "WITH":
        return [], False
    recursive = len(tokens) > 1 and tokens[1].keyword == "RECURSIVE"
    index, ctes = 2 if recursive else 1, []
    while True:
        if index >= len(tokens) or not tokens[index].is_name:
            raise ValueError("cannot read the WITH clause")
        name, index = _name_part(tokens[index]), index + 1
        if index < len(tokens) and tokens[index].is_punct("("):
            index = _closing(tokens, index) + 1
        while index < len(tokens) and tokens[index].keyword in ("AS", "NOT", "MATERIALIZED"):
            index += 1
        if index >= len(tokens) or not tokens[index].is_punct("("):
            raise ValueError("cannot read the WITH clause")
        index = _closing(tokens, index)
        ctes.append(_Cte(name, index))
        index += 1
        if index >= len(tokens) or not tokens[index].is_punct(","):
            return ctes, recursive
        index += 1


def _introduces_table(keyword: str, previous: str) -> bool:
    if keyword == "FROM":
        return previous != "DISTINCT"  # IS [NOT] DISTINCT FROM
    if keyword == "UPDATE":
        return previous not in ("FOR", "DO", "KEY")
    return keyword in ("JOIN", "INTO", "USING", "TABLE")  # TABLE t: PostgreSQL's SELECT * FROM t


def _table_ref(tokens: list[_Token], index: int, found: list[tuple[str, int]]) -> int:
    """Read the table named at ``index`` into ``found``; the index after it."""
    while index < len(tokens) and tokens[index].keyword in ("ONLY", "LATERAL"):
        index += 1
    if index < len(tokens) and tokens[index].is_punct("("):
        return index  # a subquery: its own FROM is read when the walk gets there
    start, parts = index, []
    while True:
        if index >= len(tokens) or not tokens[index].is_name:
            raise ValueError("expected a table name after FROM, JOIN or a comma")
        parts.append(_name_part(tokens[index]))
        index += 1
        if index < len(tokens) and tokens[index].is_punct("."):
            index += 1
            continue
        found.append((".".join(parts), start))
        return index


def read_tables(tokens: list[_Token]) -> list[tuple[str, int]]:
    """Every table a statement names after FROM, JOIN, INTO, UPDATE, USING or TABLE, with its index.

    Function-call parentheses (``EXTRACT(YEAR FROM d)``) are skipped; subqueries are read.
    Functions that run SQL given as text are refused by name (``_refuse_functions``), not
    looked into: the database role is what limits them.
    """
    found: list[tuple[str, int]] = []
    stack, index = [_Frame(query=True)], 0
    while index < len(tokens):
        token, frame = tokens[index], stack[-1]
        previous = tokens[index - 1].keyword if index else ""
        if token.is_punct("("):
            following = tokens[index + 1].keyword if index + 1 < len(tokens) else ""
            stack.append(_Frame(query=following in _QUERY_STARTS))
        elif token.is_punct(")"):
            if len(stack) == 1:
                raise ValueError("unbalanced parentheses")
            stack.pop()
        elif frame.query and _introduces_table(token.keyword, previous):
            frame.in_from = frame.in_from or token.keyword in ("FROM", "JOIN")
            index = _table_ref(tokens, index + 1, found)
            continue
        elif frame.query and frame.in_from and token.is_punct(","):
            index = _table_ref(tokens, index + 1, found)
            continue
        elif token.keyword in _FROM_LIST_ENDS:
            frame.in_from = False
        index += 1
    if len(stack) != 1:
        raise ValueError("unbalanced parentheses")
    return found


def _is_cte(name: str, index: int, ctes: list[_Cte], recursive: bool) -> bool:
    # A non-recursive CTE is visible only after its own body; before that the name is a table.
    return any(c.name == name and (recursive or c.body_end < index) for c in ctes)


def check_query(spec: QuerySpec, *, read_only: bool, allowed_tables: set[str]) -> bool:
    """Refuse a query that is not one safe statement over allowed tables with bound params.

    Returns:
        Whether the query changes data (it then runs in a read-write transaction; every other
        query runs read-only, whatever ``read_only`` says).

    Raises:
        ValueError: what is wrong, naming the table, function or parameter.
    """
    tokens = _statement_tokens(spec.sql, read_only)
    ctes, recursive = _top_level_ctes(tokens)
    for name, index in read_tables(tokens):
        if not _is_cte(name, index, ctes, recursive) and name not in allowed_tables:
            listed = ", ".join(sorted(allowed_tables)) or "none"
            raise ValueError(f"reads table '{name}', which is not in allowed_tables ({listed})")
    _check_params(spec)
    return any(t.keyword in _DATA_CHANGING for t in tokens)


def _check_params(spec: QuerySpec) -> None:
    bound = set(text(spec.sql).compile().params)
    undeclared = sorted(bound - set(spec.params))
    if undeclared:
        raise ValueError(f"bind parameter ':{undeclared[0]}' is not declared in params")
    unused = sorted(set(spec.params) - bound)
    if unused:
        raise ValueError(f"parameter '{unused[0]}' is declared but the SQL does not use it")
    for name, param in spec.params.items():
        if param.type in ("array", "object"):
            raise ValueError(f"parameter '{name}' is of type {param.type}; only scalars bind")
