"""resolve_inputs: types, enums and patterns as before, plus valid text and bounded sizes at any
depth, with the path of the offending value in ``fields``."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration_defs.language.inputs import InputError, resolve_inputs
from orchestration_defs.language.models import InputSpec
from orchestration_defs.language.values import ValueLimits

SPECS = {
    "name": InputSpec(type="string", required=True),
    "topic": InputSpec(type="array"),
    "meta": InputSpec(type="object"),
    "n": InputSpec(type="number"),
    "mode": InputSpec(type="string", enum=["a", "b"]),
}
SMALL = ValueLimits(max_string_chars=20, max_items=5, max_depth=3, max_total_bytes=200)


def _error(given: dict[str, Any], limits: ValueLimits = SMALL) -> InputError:
    with pytest.raises(InputError) as caught:
        resolve_inputs(SPECS, given, limits)
    return caught.value


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"name": "\ud800"}, "inputs.name"),
        ({"name": "ok\x00"}, "inputs.name"),
        ({"name": "a", "topic": ["x", {"name": "\udfff"}]}, "inputs.topic[1].name"),
        ({"name": "a", "meta": {"\ud800": 1}}, 'inputs.meta["\\ud800"]'),
        ({"name": "a", "meta": {"deep": [{"k\x00": 1}]}}, 'inputs.meta.deep[0]["k\\u0000"]'),
        ({"name": "x" * 21}, "inputs.name"),
        ({"name": "a", "topic": list(range(6))}, "inputs.topic"),
        ({"name": "a", "meta": {"a": {"b": {"c": {}}}}}, "inputs.meta.a.b.c"),
        ({"name": "a", "n": float("inf")}, "inputs.n"),
        ({"name": "a", "n": 10**40}, "inputs.n"),
        ({"name": "a", "\ud800": 1}, 'inputs["\\ud800"]'),
        ({"name": "a", "x\x00": 1}, 'inputs["x\\u0000"]'),
    ],
)
def test_bad_values_name_their_path(given: dict[str, Any], field: str) -> None:
    error = _error(given)
    assert field in error.fields
    for problem in error.problems:  # every message is safe to send back and to log
        problem.encode("utf-8")
        assert "\x00" not in problem


def test_the_total_counts_all_inputs_together() -> None:
    given = {"name": "a" * 20, "topic": ["b" * 20] * 5, "meta": {k: "d" * 20 for k in "cefg"}}
    error = _error(given)
    assert error.fields == ["inputs"] and "at most 200 bytes" in error.problems[0]


def test_within_the_limits_values_and_defaults_come_back() -> None:
    given = {"name": "Ada", "topic": ["x", {"k": [1]}], "n": 2}
    assert resolve_inputs(SPECS, given, SMALL) == {
        **given,
        "meta": None,
        "mode": None,
    }


def test_messages_keep_their_shape_and_cut_long_values() -> None:
    error = _error({"name": "a", "mode": "z" * 500}, ValueLimits())
    assert error.fields == ["inputs.mode"]
    assert error.problems[0].startswith("input 'mode' must be one of ['a', 'b'], got 'zzz")
    assert len(error.problems[0]) < 200
    error = _error({"name": 3})
    assert error.problems == ["input 'name' must be of type string, got int"]
    assert error.fields == ["inputs.name"]
    error = _error({})
    assert error.problems == ["missing required input 'name' (string)"]


def test_the_default_limits_apply_without_being_passed() -> None:
    with pytest.raises(InputError, match="65536"):
        resolve_inputs(SPECS, {"name": "x" * 70_000})
