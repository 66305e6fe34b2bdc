"""An entry may not declare the variables of Baton's or Dagster's own processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from agent_resources.catalog import RESERVED_ENV, CatalogError, load_entry
from baton.settings import Settings


def _settings_variables() -> list[str]:
    names: list[str] = []
    for name, field in Settings.model_fields.items():
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            names += [f"BATON_{name}__{sub}".upper() for sub in group.model_fields]
        else:
            names.append(f"BATON_{name}".upper())
    return names


@pytest.mark.parametrize("name", [*_settings_variables(), "BATON_AGENTS_DIR"])
def test_every_variable_the_settings_read_is_reserved(name: str) -> None:
    assert RESERVED_ENV.match(name), f"{name} is read by Baton but an agent may declare it"


@pytest.mark.parametrize(
    "name", ["BATON_SECRET_KEY", "BATON_DATABASE_URL", "DAGSTER_HOME", "PGPASSWORD"]
)
def test_an_entry_declaring_one_is_refused_with_the_name(tmp_path: Path, name: str) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text(
        f"slug: probe\ntype: echo\ndescription: A probe.\nenv: [{{name: {name}}}]\n",
        encoding="utf-8",
    )
    with pytest.raises(CatalogError, match=f"'{name}' belongs to Baton's or Dagster's"):
        load_entry(path)


@pytest.mark.parametrize(
    "name", ["BATON_FINANCE_DATABASE_URL", "BATON_PUBLISH_KEY", "OPENAI_API_KEY", "BATONX"]
)
def test_agent_variables_stay_allowed(name: str) -> None:
    assert not RESERVED_ENV.match(name)
