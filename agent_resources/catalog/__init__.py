"""The agent catalog: one YAML entry per agent in this folder (and BATON_AGENTS_DIR).

Plain Python and pydantic, no Dagster: the validator and the CLI read it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestration_defs.language.yaml_loader import YamlProblem, load_yaml, read_text

CATALOG_DIR = Path(__file__).resolve().parent
AgentType = Literal["echo", "context", "api", "tool", "function", "orchestrator"]
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)
# Variables of Baton's and Dagster's own processes: an entry declaring one would be handed the
# worker's database URL or the key that decrypts stored webhook secrets. The catalog cannot
# import the settings (it is plain Python); tests/agent_resources/catalog checks this list
# against every variable the settings read.
RESERVED_ENV = re.compile(
    r"^(DAGSTER_|PG|BATON_(AGENTS_DIR$|DATA_DIR$|DATABASE_URL$|LIBRARY_DIR$|ASSETS_DIR$"
    r"|AUTO_MIGRATE$|STRICT_LIBRARY$|SECRET_KEY$|SECRET_KEY_PREVIOUS$|PUBLIC_URL$"
    r"|[A-Z0-9]+__))"  # every settings group (BATON_API__..., BATON_STEPS__...)
)


class CatalogError(ValueError):
    """A catalog entry that cannot be read or does not fit the model."""


class EnvVarSpec(BaseModel):
    """An environment variable the agent may read."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    required: bool = False
    secret: bool | None = Field(
        default=None, description="Masked everywhere; default: guessed from the name."
    )
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if RESERVED_ENV.match(name):
            raise ValueError(
                f"'{name}' belongs to Baton's or Dagster's own processes (or libpq); an agent "
                "may not read it: give the agent a variable of its own"
            )
        return name

    @property
    def is_secret(self) -> bool:
        return self.secret if self.secret is not None else bool(_SECRET_NAME.search(self.name))


class AgentLimits(BaseModel):
    """Limits an agent runs under (which ones apply depends on its type)."""

    model_config = ConfigDict(extra="forbid")

    timeout_seconds: float = Field(60, gt=0, description="Wall clock for one call.")
    max_output_bytes: int = Field(1_000_000, gt=0)
    cpu_seconds: float = Field(10, gt=0, description="Function agents: CPU time.")
    memory_mb: int = Field(256, ge=32, description="Function agents: address space.")
    max_rows: int = Field(1000, gt=0, description="Tool agents: rows returned.")


class AgentEntry(BaseModel):
    """One agent of the catalog."""

    model_config = ConfigDict(extra="forbid")

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=100)
    type: AgentType
    description: str
    config: dict[str, Any] = Field(default_factory=dict)
    env: list[EnvVarSpec] = Field(default_factory=list)
    limits: AgentLimits = Field(default_factory=AgentLimits)  # type: ignore[arg-type]
    source: str | None = Field(default=None, exclude=True)

    @property
    def resource_key(self) -> str:
        """The Dagster resource key the agent is bound under."""
        return "agent_" + self.slug.replace("-", "_")

    def env_values(self, environ: dict[str, str] | None = None) -> dict[str, str]:
        """The declared variables that are set, and nothing else."""
        environ = dict(os.environ) if environ is None else environ
        return {v.name: environ[v.name] for v in self.env if v.name in environ}

    def missing_env(self, environ: dict[str, str] | None = None) -> list[str]:
        """Required variables that are not set."""
        values = self.env_values(environ)
        return [v.name for v in self.env if v.required and v.name not in values]


def _entry_files(extra: Iterable[Path]) -> list[Path]:
    files = sorted(CATALOG_DIR.glob("*.yaml"))
    for folder in extra:
        files.extend(sorted(folder.glob("*.yaml")))
    return files


def load_entry(path: Path) -> AgentEntry:
    """Read one catalog file.

    Raises:
        CatalogError: unreadable, refused or broken YAML (the bounded loader of definitions,
            with its limits and tag rule), or an entry that does not fit.
    """
    try:
        data, _, problems = load_yaml(read_text(path))
    except YamlProblem as exc:
        where = f"{path}:{exc.line}:{exc.column}" if exc.line is not None else str(path)
        raise CatalogError(f"{where}: {exc.message}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read file: {exc}") from exc
    if problems:
        first = problems[0]
        raise CatalogError(f"{path}:{first.line}:{first.column}: {first.message}")
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: expected a mapping with slug, type and description")
    try:
        return AgentEntry.model_validate({**data, "source": str(path)})
    except ValidationError as exc:
        raise CatalogError(f"{path}: {exc}") from exc


@cache
def _load(extra: tuple[Path, ...]) -> dict[str, AgentEntry]:
    entries: dict[str, AgentEntry] = {}
    for path in _entry_files(extra):
        entry = load_entry(path)
        if entry.slug in entries:
            raise CatalogError(
                f"{path}: agent '{entry.slug}' is also in {entries[entry.slug].source}"
            )
        entries[entry.slug] = entry
    return entries


def agent_catalog() -> dict[str, AgentEntry]:
    """Every known agent by slug: the shipped entries plus those in BATON_AGENTS_DIR folders."""
    extra = tuple(Path(p) for p in os.environ.get("BATON_AGENTS_DIR", "").split(":") if p)
    return dict(_load(extra))
