"""``concurrency`` (orchestration) and ``pool`` (step): validation, dumps and the compiled job."""

from __future__ import annotations

import textwrap

import pytest

from orchestration_defs.compiler.job import build_job
from orchestration_defs.language.library import load_text

BASE = """
slug: par
name: Par
version: 1
{top}
steps:
  - id: a
    agent: echo
    {step}
"""


def _load(top: str = "", step: str = "") -> tuple[object, list[str]]:
    text = textwrap.dedent(BASE.format(top=top, step=step))
    spec, errors = load_text(text, source="par.yaml", known_agents={"echo"})
    return spec, [f"{e.field}: {e.message}" for e in errors]


def test_unset_keys_stay_out_of_the_dump() -> None:
    spec, errors = _load()
    assert not errors and spec is not None
    dump = spec.model_dump(mode="json", by_alias=True)  # type: ignore[attr-defined]
    assert "concurrency" not in dump and "pool" not in dump["steps"][0]


def test_set_keys_are_dumped_and_compiled() -> None:
    spec, errors = _load("concurrency: 3", "pool: openai/chat")
    assert not errors and spec is not None
    dump = spec.model_dump(mode="json", by_alias=True)  # type: ignore[attr-defined]
    assert dump["concurrency"] == 3 and dump["steps"][0]["pool"] == "openai/chat"
    job = build_job(spec)  # type: ignore[arg-type]
    assert job.get_node_named("par__a").definition.pool == "openai/chat"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("top", "step", "field", "expected"),
    [
        ("concurrency: 0", "", "concurrency", "greater than or equal to 1"),
        ("concurrency: two", "", "concurrency", "valid integer"),
        ("concurrency: 1000", "", "concurrency", "less than or equal to 256"),
        ("", "pool: 'bad pool'", "steps[0].pool", "should match pattern"),
        ("", "pool: ''", "steps[0].pool", "should match pattern"),
    ],
)
def test_bad_values_name_the_field(top: str, step: str, field: str, expected: str) -> None:
    spec, errors = _load(top, step)
    assert spec is None
    assert any(e.startswith(f"{field}:") and expected in e for e in errors), errors
