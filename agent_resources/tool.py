"""The ``tool`` agent: named, parameterized SQL queries declared in the catalog entry.

A step names a query and gives its parameters; the SQL text comes only from the entry and the
parameters are bound, never spliced in, so no input can change what the statement does or which
tables it reads. The entry's author is not trusted either: every declared query is checked when
the agent is built (one statement, a ``SELECT``/``WITH`` when ``read_only``, the default,
reading only ``allowed_tables``), and that check is only the early error. The database keeps
the query in bounds (``sql_exec``): on SQLite a read-only file and an authorizer allowing only
the allowed tables; on PostgreSQL one prepared statement in a read-only transaction it cannot
end, a statement timeout, the entry's ``search_path`` and, when given, ``role``. A query that
changes data runs read-write only if ``read_only`` is off and its statement is a write.

The database is the URL in the env var ``database_url_env`` (default
``BATON_FINANCE_DATABASE_URL``), else ``database_url`` from the config, else the embedded SQLite
finance database (``<data_dir>/finance.db``), seeded on first use.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from agent_resources.base import Agent, AgentError, AgentRequest, AgentResult
from agent_resources.catalog import AgentEntry
from agent_resources.finance_data import default_finance_url, seed_finance_db
from agent_resources.http import masker_for
from agent_resources.sql_check import QuerySpec, check_query
from agent_resources.sql_exec import PgScope, QueryResult, execute_query, first_line
from baton.secrets import Masker
from baton.settings import get_settings
from orchestration_defs.language.inputs import InputError, resolve_inputs
from orchestration_defs.language.models import Identifier

DEFAULT_URL_ENV = "BATON_FINANCE_DATABASE_URL"
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_PG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class ToolConfig(BaseModel):
    """Where the database is and which queries the agent may run there."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    database_url_env: str = Field(
        DEFAULT_URL_ENV, description="Env var holding the SQLAlchemy URL (declare it in env)."
    )
    database_url: str | None = Field(
        None, description="URL used when the env var is unset; never put a password here."
    )
    read_only: bool = Field(True, description="Only SELECT/WITH, in a read-only transaction.")
    allowed_tables: list[str] = Field(
        default_factory=list, description="Tables queries may read; schema-qualified as written."
    )
    schema_: str | None = Field(
        "public",
        alias="schema",
        description="PostgreSQL: the only schema on the search_path (pg_catalog aside).",
    )
    role: str | None = Field(
        None, description="PostgreSQL: role the queries run as (SET LOCAL ROLE); see docs."
    )
    max_rows: int | None = Field(None, ge=1, description="Rows returned; default limits.max_rows.")
    queries: dict[Identifier, QuerySpec] = Field(min_length=1)
    _writes: dict[str, bool] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _safe_queries(self) -> ToolConfig:
        bad = [t for t in self.allowed_tables if not _TABLE_NAME.match(t)]
        if bad:
            raise ValueError(f"allowed_tables: not a table name: {', '.join(bad)}")
        for field, value in (("schema", self.schema_), ("role", self.role)):
            if value is not None and not _PG_NAME.match(value):
                raise ValueError(f"{field}: not a PostgreSQL name: {value!r}")
        allowed = {t.lower() for t in self.allowed_tables}
        problems = []
        for name, spec in self.queries.items():
            try:
                self._writes[name] = check_query(
                    spec, read_only=self.read_only, allowed_tables=allowed
                )
            except ValueError as exc:
                problems.append(f"query '{name}': {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def writes(self, name: str) -> bool:
        """Whether query ``name`` changes data (it alone runs read-write)."""
        return self._writes.get(name, False)


class ToolInput(BaseModel):
    """A step's ``with``: the query to run and its parameters."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(description="Name of a query the entry declares.")
    params: dict[str, Any] = Field(default_factory=dict)


# --- Static checks of the declared SQL -----------------------------------------------------

_SEED_LOCK = threading.Lock()
_SEEDED: set[str] = set()


def ensure_seeded(url: str) -> None:
    """Seed the embedded finance database once per process (and again if its file vanished)."""
    path = make_url(url).database or ""
    with _SEED_LOCK:
        if url in _SEEDED and Path(path).exists():
            return
        seed_finance_db(url)
        _SEEDED.add(url)


_LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})


def _database_identity(url: str) -> tuple[str, ...]:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return (backend, str(Path(parsed.database or "").expanduser().resolve()))
    host = parsed.host or ""
    host = "localhost" if host in _LOCAL_HOSTS or host.startswith("/") else host.lower()
    return (backend, host, str(parsed.port or 5432), parsed.database or "")


def is_batons_database(url: str) -> bool:
    """Whether ``url`` names the database of Baton's own tables (tokens, runs, secrets)."""
    try:
        return _database_identity(url) == _database_identity(get_settings().db_url)
    except ArgumentError:
        return False


def _validation_problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


class ToolAgent(Agent):
    """Runs one of the entry's named queries with the step's parameters.

    Input: ``{query, params}``. Output: ``{query, columns, rows, row_count, truncated}``, at most
    ``max_rows`` rows (``truncated`` says more matched); usage: ``rows`` and ``latency_ms``.
    """

    config_model = ToolConfig
    input_model = ToolInput
    config: ToolConfig

    def __init__(self, entry: AgentEntry) -> None:
        try:
            super().__init__(entry)
        except ValidationError as exc:
            problems = _validation_problems(exc)
            raise AgentError(f"agent '{entry.slug}': {problems}", kind="config") from None
        declared = {spec.name for spec in entry.env}
        if self.config.database_url_env not in declared:
            raise AgentError(
                f"agent '{entry.slug}': database_url_env {self.config.database_url_env} is not "
                "declared in the entry's env (only declared variables reach the agent)",
                kind="config",
            )

    @property
    def max_rows(self) -> int:
        """Rows a query returns at most."""
        return self.config.max_rows or self.entry.limits.max_rows

    def run(self, request: AgentRequest) -> AgentResult:
        started = time.monotonic()
        data = self.parse_input(request.input)
        spec = self._query(data.query)
        params = self._params(data.query, spec, data.params)
        url = self._url(request.env)
        result = execute_query(
            url,
            spec.sql,
            params,
            read_only=not self.config.writes(data.query),
            allowed_tables=self.config.allowed_tables,
            param_types={name: p.type for name, p in spec.params.items()},
            scope=PgScope(role=self.config.role, schema=self.config.schema_),
            max_rows=self.max_rows,
            max_bytes=self.entry.limits.max_output_bytes,
            timeout_seconds=request.timeout_seconds or self.entry.limits.timeout_seconds,
            masker=self._masker(request.env, url),
            label=f"query '{data.query}'",
        )
        output = self._output(data.query, result)
        usage = {"rows": len(result.rows), "latency_ms": round((time.monotonic() - started) * 1000)}
        return AgentResult(output=output, usage=usage)

    def _query(self, name: str) -> QuerySpec:
        spec = self.config.queries.get(name)
        if spec is None:
            known = ", ".join(sorted(self.config.queries))
            raise AgentError(
                f"unknown query '{name}' for agent '{self.entry.slug}'; known queries: {known}",
                kind="validation",
            )
        return spec

    def _params(self, name: str, spec: QuerySpec, given: Mapping[str, Any]) -> dict[str, Any]:
        try:
            values = resolve_inputs(spec.params, given)
        except InputError as exc:
            problems = "; ".join(p.replace("input '", "parameter '") for p in exc.problems)
            raise AgentError(f"query '{name}': {problems}", kind="validation") from None
        for param, value in values.items():
            if isinstance(value, str) and "\x00" in value:
                raise AgentError(
                    f"query '{name}': parameter '{param}' contains a NUL character",
                    kind="validation",
                )
        return values

    def _url(self, env: Mapping[str, str]) -> str:
        url = env.get(self.config.database_url_env) or self.config.database_url
        if url:
            url = re.sub(r"^postgres://", "postgresql://", url)
            if is_batons_database(url):
                raise AgentError(
                    f"agent '{self.entry.slug}': {self.config.database_url_env} points at "
                    "Baton's own database; tool agents may not query it",
                    kind="config",
                )
            return url
        url = default_finance_url()
        try:
            ensure_seeded(url)
        except (SQLAlchemyError, OSError) as exc:
            detail = first_line(exc)
            message = f"cannot prepare the embedded database: {detail}"
            raise AgentError(message, kind="server") from None
        return url

    def _masker(self, env: Mapping[str, str], url: str) -> Masker:
        try:
            password = make_url(url).password or ""
        except ArgumentError:
            password = ""
        return masker_for(self.entry, env, [url, str(password)])

    def _output(self, name: str, result: QueryResult) -> dict[str, Any]:
        output: dict[str, Any] = {
            "query": name,
            "columns": result.columns,
            "rows": result.rows,
            "row_count": len(result.rows),
            "truncated": result.truncated,
        }
        if result.affected_rows is not None:
            output["affected_rows"] = result.affected_rows
        size = len(json.dumps(output, separators=(",", ":")).encode())
        limit = self.entry.limits.max_output_bytes
        if size > limit:
            raise AgentError(
                f"query '{name}' returned {size} bytes of JSON, over max_output_bytes ({limit}); "
                "narrow its parameters or lower max_rows",
                kind="limit",
            )
        return output
