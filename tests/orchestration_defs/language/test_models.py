"""The spec models: unknown keys, step kinds, input and retry consistency."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from orchestration_defs.language.models import (
    InputSpec,
    OrchestrationSpec,
    RetrySpec,
    StepSpec,
    matches_type,
)


def minimal(**extra: Any) -> dict[str, Any]:
    """The smallest valid orchestration, with keys added or replaced."""
    data: dict[str, Any] = {
        "slug": "demo",
        "name": "Demo",
        "version": 1,
        "steps": [{"id": "a", "agent": "echo"}],
    }
    data.update(extra)
    return data


def errors_of(model: type[Any], data: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return info.value.errors(include_url=False)


def messages(model: type[Any], data: Any) -> str:
    return "\n".join(str(e["msg"]) for e in errors_of(model, data))


def test_minimal_spec_has_defaults() -> None:
    spec = OrchestrationSpec.model_validate(minimal())
    assert spec.organization == "global"
    assert spec.inputs == {}
    assert spec.outputs == {}
    assert spec.tags == {}
    step = spec.steps[0]
    assert step.kind == "agent"
    assert step.needs == []
    assert step.with_ is None
    assert step.when is None
    assert step.retry == RetrySpec()
    assert step.retry.max_attempts == 1
    assert step.retry.backoff == "constant"
    assert step.retry.jitter == "none"


def test_with_is_read_from_its_yaml_name_and_dumped_under_it() -> None:
    step = StepSpec.model_validate({"id": "a", "agent": "echo", "with": {"x": 1}})
    assert step.with_ == {"x": 1}
    assert step.model_dump(by_alias=True)["with"] == {"x": 1}
    assert StepSpec(id="a", agent="echo", with_=[1]).with_ == [1]


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        (minimal(colour="blue"), ("colour",)),
        (minimal(inputs={"x": {"type": "string", "colour": "blue"}}), ("inputs", "x", "colour")),
        (minimal(steps=[{"id": "a", "agent": "echo", "colour": "blue"}]), ("steps", 0, "colour")),
        (
            minimal(steps=[{"id": "a", "agent": "echo", "retry": {"tries": 3}}]),
            ("steps", 0, "retry", "tries"),
        ),
        (
            minimal(steps=[{"id": "a", "checkpoint": {"prompt": "ok?", "colour": "blue"}}]),
            ("steps", 0, "checkpoint", "colour"),
        ),
        (
            minimal(
                steps=[
                    {
                        "id": "a",
                        "checkpoint": {
                            "prompt": "ok?",
                            "notify": [{"webhook": "https://x.test", "colour": "blue"}],
                        },
                    }
                ]
            ),
            ("steps", 0, "checkpoint", "notify", 0, "colour"),
        ),
        (
            minimal(
                steps=[
                    {
                        "id": "a",
                        "checkpoint": {
                            "prompt": "ok?",
                            "timeout": "1h",
                            "on_timeout": {"escalate": {"to": ["boss"], "colour": "blue"}},
                        },
                    }
                ]
            ),
            ("steps", 0, "checkpoint", "on_timeout", "EscalateAction", "escalate", "colour"),
        ),
    ],
    ids=["top", "input", "step", "retry", "checkpoint", "notify", "escalation"],
)
def test_unknown_keys_are_refused_at_every_level(data: dict[str, Any], loc: tuple) -> None:
    errors = errors_of(OrchestrationSpec, data)
    assert [e["loc"] for e in errors if e["type"] == "extra_forbidden"] == [loc]


@pytest.mark.parametrize(
    "key", ["slug", "name", "version", "steps"], ids=lambda key: f"without-{key}"
)
def test_top_level_keys_are_required(key: str) -> None:
    data = minimal()
    del data[key]
    errors = errors_of(OrchestrationSpec, data)
    assert [(e["loc"], e["type"]) for e in errors] == [((key,), "missing")]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("slug", "Has Spaces"),
        ("slug", "-leading-dash"),
        ("slug", "UPPER"),
        ("name", ""),
        ("version", 0),
        ("version", 1.5),
        ("steps", []),
        ("organization", ""),
        ("tags", {"priority": 1}),
    ],
)
def test_top_level_values_are_checked(key: str, value: Any) -> None:
    errors = errors_of(OrchestrationSpec, minimal(**{key: value}))
    assert errors
    assert all(e["loc"][0] == key for e in errors)


@pytest.mark.parametrize("slug", ["hello", "content-pipeline", "kpi_tracking", "9lives"])
def test_valid_slugs(slug: str) -> None:
    assert OrchestrationSpec.model_validate(minimal(slug=slug)).slug == slug


def test_job_name_turns_dashes_into_underscores() -> None:
    assert OrchestrationSpec.model_validate(minimal(slug="content-pipeline")).job_name == (
        "content_pipeline"
    )


def test_step_lookup() -> None:
    spec = OrchestrationSpec.model_validate(
        minimal(steps=[{"id": "a", "agent": "echo"}, {"id": "b", "agent": "echo"}])
    )
    assert spec.step("b").id == "b"
    with pytest.raises(KeyError):
        spec.step("c")


@pytest.mark.parametrize(
    "data",
    [
        minimal(steps=[{"id": "1st", "agent": "echo"}]),
        minimal(steps=[{"id": "has-dash", "agent": "echo"}]),
        minimal(steps=[{"id": "a", "agent": "echo", "needs": ["not valid"]}]),
        minimal(inputs={"bad-name": {}}),
        minimal(outputs={"bad name": 1}),
    ],
    ids=["step-digit", "step-dash", "needs", "input-name", "output-name"],
)
def test_identifiers_are_checked(data: dict[str, Any]) -> None:
    assert any(e["type"] == "string_pattern_mismatch" for e in errors_of(OrchestrationSpec, data))


# --- step kinds ---------------------------------------------------------------------------


def test_a_step_needs_a_kind() -> None:
    assert "a step needs exactly one of agent, checkpoint, orchestration (found: none)" in messages(
        StepSpec, {"id": "a"}
    )


def test_a_step_takes_only_one_kind() -> None:
    text = messages(StepSpec, {"id": "a", "agent": "echo", "checkpoint": {"prompt": "ok?"}})
    assert "exactly one of agent, checkpoint, orchestration (found: agent, checkpoint)" in text


def test_an_orchestration_step_is_a_kind_of_its_own() -> None:
    step = StepSpec.model_validate({"id": "a", "orchestration": "child"})
    assert (step.kind, step.child_failure_policy) == ("orchestration", "fail")
    text = messages(StepSpec, {"id": "a", "agent": "echo", "orchestration": "child"})
    assert "found: agent, orchestration" in text


def test_a_checkpoint_step_is_a_kind_of_its_own() -> None:
    step = StepSpec.model_validate({"id": "review", "checkpoint": {"prompt": "Publish?"}})
    assert step.kind == "checkpoint"
    assert step.agent is None
    assert step.checkpoint is not None
    assert step.checkpoint.decisions == ["continue", "retry", "abort"]


@pytest.mark.parametrize(
    "extra", [{"with": {"x": 1}}, {"retry": {"max_attempts": 2}}], ids=["with", "retry"]
)
def test_a_checkpoint_step_takes_no_with_or_retry(extra: dict[str, Any]) -> None:
    data = {"id": "review", "checkpoint": {"prompt": "Publish?"}, **extra}
    assert "a checkpoint step takes no 'with' or 'retry'" in messages(StepSpec, data)


def test_a_checkpoint_step_takes_no_timeout_seconds() -> None:
    data = {"id": "review", "checkpoint": {"prompt": "Publish?"}, "timeout_seconds": 60}
    assert "use checkpoint.timeout" in messages(StepSpec, data)


@pytest.mark.parametrize("value", [0, -1, 86400 * 7 + 1])
def test_timeout_seconds_bounds(value: float) -> None:
    errors = errors_of(StepSpec, {"id": "a", "agent": "echo", "timeout_seconds": value})
    assert [e["loc"] for e in errors] == [("timeout_seconds",)]


@pytest.mark.parametrize("value", [True, "{{ inputs.flag }}", None])
def test_when_is_a_bool_or_a_template(value: Any) -> None:
    assert StepSpec.model_validate({"id": "a", "agent": "echo", "when": value}).when == value


# --- inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"type": "integer", "default": "3"}, "default '3' is not of type integer"),
        ({"type": "integer", "default": True}, "default True is not of type integer"),
        ({"type": "string", "default": 3}, "default 3 is not of type string"),
        ({"type": "array", "default": {"a": 1}}, "default {'a': 1} is not of type array"),
        ({"enum": ["a", 1]}, "enum value 1 is not of type string"),
        ({"type": "integer", "enum": [1, "2"]}, "enum value '2' is not of type integer"),
        ({"enum": ["a", "b"], "default": "c"}, "default 'c' is not one of enum ['a', 'b']"),
        ({"type": "integer", "pattern": "^1"}, "'pattern' applies only to inputs of type string"),
        ({"type": "array", "pattern": "x"}, "'pattern' applies only to inputs of type string"),
        ({"pattern": "("}, "not a valid regular expression"),
        ({"pattern": "^[a-z]+$", "default": "A1"}, "default 'A1' does not match pattern"),
        ({"required": True, "default": "x"}, "a required input cannot have a default"),
        ({"type": "date"}, "Input should be 'string', 'integer'"),
    ],
)
def test_input_spec_must_be_consistent(data: dict[str, Any], expected: str) -> None:
    assert expected in messages(InputSpec, data)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"type": "string", "pattern": "^[a-z]+$", "default": "abc"},
        {"type": "number", "default": 3},
        {"type": "number", "default": 2.5, "enum": [2.5, 3]},
        {"type": "boolean", "default": False},
        {"type": "array", "default": ["intro", "body"]},
        {"type": "object", "default": {"a": 1}},
        {"type": "integer", "enum": [1, 2, 3], "default": 2},
        {"required": True, "description": "Who to greet."},
    ],
)
def test_consistent_input_specs(data: dict[str, Any]) -> None:
    spec = InputSpec.model_validate(data)
    assert spec.type == data.get("type", "string")


@pytest.mark.parametrize(
    ("value", "type_", "expected"),
    [
        ("x", "string", True),
        (1, "string", False),
        (1, "integer", True),
        (1.0, "integer", False),
        (True, "integer", False),
        (1, "number", True),
        (1.5, "number", True),
        (False, "number", False),
        (True, "boolean", True),
        (0, "boolean", False),
        ([], "array", True),
        ({}, "array", False),
        ({}, "object", True),
        ([], "object", False),
    ],
)
def test_matches_type(value: Any, type_: str, expected: bool) -> None:
    assert matches_type(value, type_) is expected


# --- retry --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"max_attempts": 0}, ("max_attempts",)),
        ({"max_attempts": 51}, ("max_attempts",)),
        ({"delay_seconds": -1}, ("delay_seconds",)),
        ({"delay_seconds": 86401}, ("delay_seconds",)),
        ({"backoff": "quadratic"}, ("backoff",)),
        ({"jitter": "some"}, ("jitter",)),
    ],
)
def test_retry_bounds(data: dict[str, Any], loc: tuple) -> None:
    assert [e["loc"] for e in errors_of(RetrySpec, data)] == [loc]


@pytest.mark.parametrize("jitter", ["full", "plus_minus", True])
def test_jitter_needs_a_delay(jitter: Any) -> None:
    assert "jitter needs a delay_seconds above 0" in messages(RetrySpec, {"jitter": jitter})


@pytest.mark.parametrize(
    ("jitter", "expected"),
    [(True, "full"), (False, "none"), (None, "none"), ("plus_minus", "plus_minus")],
)
def test_jitter_booleans(jitter: Any, expected: str) -> None:
    assert RetrySpec.model_validate({"delay_seconds": 1, "jitter": jitter}).jitter == expected


def test_retry_limits_are_inclusive() -> None:
    spec = RetrySpec.model_validate(
        {"max_attempts": 50, "delay_seconds": 86400, "backoff": "exponential", "jitter": "full"}
    )
    assert (spec.max_attempts, spec.delay_seconds, spec.backoff) == (50, 86400, "exponential")
    assert RetrySpec.model_validate({"max_attempts": 1}).max_attempts == 1
