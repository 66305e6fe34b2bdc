"""Validation of a whole document: every problem at once, each with its place."""

from __future__ import annotations

import textwrap
from collections.abc import Collection
from typing import Any

import pytest

from orchestration_defs.language.errors import SpecError, SpecErrors
from orchestration_defs.language.models import OrchestrationSpec
from orchestration_defs.language.validate import validate_document
from orchestration_defs.language.yaml_loader import load_yaml

AGENTS = frozenset({"echo"})


def check(
    text: str, known_agents: Collection[str] | None = AGENTS
) -> tuple[OrchestrationSpec | None, list[SpecError]]:
    data, positions, problems = load_yaml(textwrap.dedent(text))
    assert problems == []
    return validate_document(data, positions, source="flow.yaml", known_agents=known_agents)


def found(errors: list[SpecError]) -> list[tuple[int | None, str, str]]:
    return sorted((e.line, e.field, e.message) for e in errors)


HEADER = """\
slug: demo
name: Demo
version: 1
"""


def test_a_valid_document_gives_its_spec_and_no_errors() -> None:
    spec, errors = check(
        """\
        slug: demo
        name: Demo
        version: 1
        inputs:
          topic: {type: string, required: true}
        steps:
          - id: a
            agent: echo
            with: {text: "{{ inputs.topic }}", run: "{{ run.id }}"}
          - id: b
            agent: echo
            when: "{{ steps.a.output.text }}"
        outputs:
          text: "{{ steps.b.output }}"
        """
    )
    assert errors == []
    assert spec is not None
    assert [s.id for s in spec.steps] == ["a", "b"]


def test_every_problem_is_reported_in_one_call_with_its_line() -> None:
    text = """\
        slug: demo
        name: Demo
        version: 1
        colour: blue
        inputs:
          count: {type: integer}
        steps:
          - id: a
            agent: echo
            needs: [b]
          - id: b
            agent: echo
            with:
              x: "{{ steps.a.output }}"
              y: "{{ steps.ghost.output }}"
          - id: c
            agent: nobody
            timeout_seconds: soon
            needs: [phantom]
        """
    spec, errors = check(text)
    assert spec is None
    assert found(errors) == [
        (4, "colour", "unknown key"),
        (8, "steps[0]", "dependency cycle: a -> b -> a"),
        (15, "steps[1].with.y", "unknown step 'ghost' in template"),
        (17, "steps[2].agent", "unknown agent 'nobody' (known agents: echo)"),
        (
            18,
            "steps[2].timeout_seconds",
            "Input should be a valid number, unable to parse string as a number (got 'soon')",
        ),
        (19, "steps[2].needs[0]", "unknown step 'phantom' in needs"),
    ]
    assert all(e.source == "flow.yaml" and e.column is not None for e in errors)
    by_field = {e.field: e for e in errors}
    assert str(by_field["colour"]) == "flow.yaml:4:1: colour: unknown key"
    assert str(by_field["steps[2].needs[0]"]) == (
        "flow.yaml:19:13: steps[2].needs[0]: unknown step 'phantom' in needs"
    )


def test_a_self_cycle() -> None:
    _, errors = check(HEADER + "steps:\n  - id: a\n    agent: echo\n    needs: [a]\n")
    assert found(errors) == [(5, "steps[0]", "dependency cycle: a -> a")]


def test_a_cycle_through_templates() -> None:
    _, errors = check(
        HEADER
        + "steps:\n"
        + "  - id: a\n    agent: echo\n    with: '{{ steps.b.output }}'\n"
        + "  - id: b\n    agent: echo\n    when: '{{ steps.a.output.go }}'\n"
    )
    assert found(errors) == [(5, "steps[0]", "dependency cycle: a -> b -> a")]


def test_unknown_keys_at_several_levels_with_their_lines() -> None:
    text = """\
        slug: demo
        name: Demo
        version: 1
        inputs:
          x: {type: string, colour: red}
        steps:
          - id: a
            agent: echo
            retry: {max_attempts: 2, tries: 3}
            colour: red
        """
    _, errors = check(text)
    assert found(errors) == [
        (5, "inputs.x.colour", "unknown key"),
        (9, "steps[0].retry.tries", "unknown key"),
        (10, "steps[0].colour", "unknown key"),
    ]


def test_model_level_problems_point_at_the_item() -> None:
    text = """\
        slug: demo
        name: Demo
        version: 1
        inputs:
          n: {type: integer, default: "3"}
        steps:
          - id: a
            agent: echo
            orchestration: child
          - id: b
            orchestration: child
            retry: {max_attempts: 2}
          - id: c
            agent: echo
            retry: {jitter: full}
        """
    _, errors = check(text)
    assert found(errors) == [
        (5, "inputs.n", "default '3' is not of type integer"),
        (
            7,
            "steps[0]",
            "a step needs exactly one of agent, checkpoint, orchestration "
            "(found: agent, orchestration)",
        ),
        (10, "steps[1]", "an orchestration step takes no 'retry' or 'timeout_seconds'"),
        (15, "steps[2].retry", "jitter needs a delay_seconds above 0"),
    ]


def test_missing_required_keys() -> None:
    _, errors = check("slug: demo\nsteps:\n  - agent: echo\n")
    assert found(errors) == [
        (1, "name", "required key is missing"),
        (1, "version", "required key is missing"),
        (3, "steps[0].id", "required key is missing"),
    ]


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", ""])
def test_a_document_that_is_not_a_mapping(text: str) -> None:
    spec, errors = check(text)
    assert spec is None
    assert [e.message for e in errors] == ["expected a mapping with slug, name, version and steps"]


def test_duplicate_step_ids() -> None:
    text = HEADER + "steps:\n  - {id: a, agent: echo}\n  - {id: a, agent: echo}\n"
    _, errors = check(text)
    assert found(errors) == [(6, "steps[1].id", "duplicate step id 'a'")]


def test_template_problems() -> None:
    text = """\
        slug: demo
        name: Demo
        version: 1
        inputs:
          topic: {type: string}
        steps:
          - id: a
            agent: echo
            with:
              - "{{ inputs.topik }}"
              - "{{ secrets.token }}"
              - "{{ steps.a.output "
        outputs:
          x: "{{ steps.nope.output }}"
          y: ["{{ inputs.nope }}"]
        """
    _, errors = check(text)
    assert found(errors) == [
        (10, "steps[0].with[0]", "unknown input 'topik' in template"),
        (11, "steps[0].with[1]", "unknown name 'secrets' in template (use inputs, steps or run)"),
        (
            12,
            "steps[0].with[2]",
            "template syntax error: unexpected end of template, expected 'end of print statement'.",
        ),
        (14, "outputs.x", "unknown step 'nope' in template"),
        (15, "outputs.y[0]", "unknown input 'nope' in template"),
    ]


def test_checkpoint_templates_are_checked() -> None:
    text = HEADER + "steps:\n  - id: r\n    checkpoint:\n      prompt: '{{ steps.x.output }}'\n"
    _, errors = check(text)
    assert found(errors) == [
        (
            6,
            "steps[0].checkpoint",
            "a checkpoint offering 'retry' needs 'retry_step' when it does not depend on "
            "exactly one step",
        ),
        (7, "steps[0].checkpoint.prompt", "unknown step 'x' in template"),
    ]


def test_agents_are_not_checked_without_a_catalog() -> None:
    spec, errors = check(HEADER + "steps:\n  - {id: a, agent: anything}\n", known_agents=None)
    assert errors == []
    assert spec is not None


def test_an_empty_catalog_knows_no_agents() -> None:
    _, errors = check(HEADER + "steps:\n  - {id: a, agent: echo}\n", known_agents=[])
    assert [e.message for e in errors] == ["unknown agent 'echo' (known agents: none)"]


def test_an_agents_input_check_reports_inside_with() -> None:
    def needs_text(value: Any) -> list[tuple[tuple[str | int, ...], str]]:
        if not isinstance(value, dict) or "text" not in value:
            return [((), "missing required input 'text'")]
        if not isinstance(value["text"], str):
            return [(("text",), "input 'text': Input should be a valid string")]
        return []

    agents = {"writer": needs_text, "echo": None}
    text = """\
        slug: demo
        name: Demo
        version: 1
        steps:
          - id: a
            agent: writer
            with:
              text: 5
          - id: b
            agent: writer
          - id: c
            agent: echo
            with: whatever
        """
    _, errors = check(text, known_agents=agents)
    assert found(errors) == [
        (8, "steps[0].with.text", "agent 'writer': input 'text': Input should be a valid string"),
        (9, "steps[1].with", "agent 'writer': missing required input 'text'"),
    ]


def test_checkpoint_retry_step_must_be_upstream() -> None:
    text = """\
        slug: demo
        name: Demo
        version: 1
        steps:
          - {id: a, agent: echo}
          - {id: b, agent: echo}
          - id: one
            needs: [a, b]
            checkpoint: {prompt: "ok?"}
          - id: named
            needs: [a]
            checkpoint: {prompt: "ok?", retry_step: b}
          - id: no_retry
            needs: [a, b]
            checkpoint: {prompt: "ok?", decisions: [continue, abort]}
          - id: fine
            needs: [b]
            checkpoint: {prompt: "ok?"}
        """
    _, errors = check(text)
    assert found(errors) == [
        (
            9,
            "steps[2].checkpoint",
            "a checkpoint offering 'retry' needs 'retry_step' when it does not depend on "
            "exactly one step",
        ),
        (
            12,
            "steps[3].checkpoint.retry_step",
            "retry_step 'b' is not a step this checkpoint depends on",
        ),
    ]


def test_spec_error_text() -> None:
    assert str(SpecError("f.yaml", 3, 7, "steps[0].agent", "bad")) == (
        "f.yaml:3:7: steps[0].agent: bad"
    )
    assert str(SpecError("f.yaml", 3, None, "", "bad")) == "f.yaml:3:1: bad"
    assert str(SpecError("f.yaml", None, None, "", "bad")) == "f.yaml: bad"
    errors = SpecErrors([SpecError("a", 1, 1, "x", "one"), SpecError("b", 2, 2, "", "two")])
    assert str(errors) == "a:1:1: x: one\nb:2:2: two"
