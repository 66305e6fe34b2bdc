"""Static checks of a declared SQL query: one statement, allowed tables, declared parameters.

A small tokenizer, not a parser: it finds the tables a statement reads (after FROM, JOIN, a
comma in a FROM list, subqueries, ``TABLE x``) and the words that would make it write.
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


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    |(?P<comment>--[^\n]*|/\*.*?\*/)
    |(?P<string>'(?:[^']|'')*')
    |(?P<ident>"(?:[^"]|"")*")
    |(?P<cast>::)
    |(?P<param>:[^\W\d]\w*)
    |(?P<word>[^\W\d]\w*)
    |(?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)
    |(?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)
# Characters whose meaning differs between dialects (dollar quotes, bracket or backtick
# identifiers, backslash escapes, unterminated quotes): refused rather than guessed at.
_REFUSED_CHARS = frozenset("'\"$[]`\\")
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
        ValueError: the SQL holds a character or literal whose meaning depends on the dialect.
    """
    tokens = []
    for match in _TOKEN.finditer(sql):
        kind, value = match.lastgroup or "punct", match.group()
        if kind in ("space", "comment"):
            continue
        if (kind == "punct" and value in _REFUSED_CHARS) or (kind == "string" and "\\" in value):
            raise ValueError(f"unsupported character {value[0]!r} (quotes, $, [], ` or \\)")
        tokens.append(_Token(kind, value))
    return tokens


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
    writes = sorted({t.keyword for t in tokens} & _WRITE_WORDS) if read_only else []
    if writes:
        raise ValueError(f"{writes[0]} can write, and read_only is on")
    return tokens


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
    Functions that run SQL given as text (PostgreSQL's ``query_to_xml``) are not looked into:
    give the database role only the grants the queries need.
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


def check_query(spec: QuerySpec, *, read_only: bool, allowed_tables: set[str]) -> None:
    """Refuse a query that is not one safe statement over allowed tables with bound params.

    Raises:
        ValueError: what is wrong, naming the table or parameter.
    """
    tokens = _statement_tokens(spec.sql, read_only)
    ctes, recursive = _top_level_ctes(tokens)
    for name, index in read_tables(tokens):
        if not _is_cte(name, index, ctes, recursive) and name not in allowed_tables:
            listed = ", ".join(sorted(allowed_tables)) or "none"
            raise ValueError(f"reads table '{name}', which is not in allowed_tables ({listed})")
    _check_params(spec)


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
