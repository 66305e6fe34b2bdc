"""``triggers``: webhook triggers are checked at load time with file positions, rendered
against the body, and leave the checksum of definitions without triggers unchanged."""

from __future__ import annotations

import textwrap

import pytest

from orchestration_defs.language.library import load_text, spec_checksum
from orchestration_defs.language.models import OrchestrationSpec
from orchestration_defs.language.templates import TemplateError
from orchestration_defs.language.triggers import webhook_context

BASE = """
slug: t
name: T
version: 1
inputs:
  title: {type: string, required: true}
  n: {type: integer, default: 1}
triggers:
  - webhook:
      source: github
      filter: "{{ body.action == 'opened' and webhook.source == 'github' }}"
      inputs: {title: "PR {{ body.pr.title }}", n: "{{ body.pr.number }}"}
steps:
  - id: a
    agent: echo
    with: {x: "{{ inputs.title }}"}
"""


def load(text: str) -> tuple[OrchestrationSpec | None, list[str]]:
    spec, errors = load_text(textwrap.dedent(text), source="t.yaml", known_agents={"echo"})
    return spec, [str(e) for e in errors]


def context(body: object) -> dict[str, object]:
    return webhook_context(body, webhook_id="msg_1", source="github", received_at="now")


def test_a_trigger_loads_and_renders_against_the_body() -> None:
    spec, errors = load(BASE)
    assert errors == [] and spec is not None
    trigger = spec.triggers[0].webhook
    body = {"action": "opened", "pr": {"title": "Fix", "number": 7}}
    assert trigger.matches(context(body))
    assert trigger.render_inputs(context(body)) == {"title": "PR Fix", "n": 7}
    assert not trigger.matches(context({"action": "closed"}))


def test_a_missing_key_in_the_body_is_a_template_error() -> None:
    spec, _ = load(BASE)
    assert spec is not None
    with pytest.raises(TemplateError, match="pr"):
        spec.triggers[0].webhook.render_inputs(context({"action": "opened"}))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "body.action == 'opened'",
            "inputs.title == 'x'",
            "t.yaml:11:7: triggers[0].webhook.filter: unknown name 'inputs' in trigger template",
        ),
        (
            '"PR {{ body.pr.title }}"',
            '"{{ steps.a.output }}"',
            "triggers[0].webhook.inputs: inputs.title: unknown name 'steps'",
        ),
        ('"{{ body.pr.number }}"', '"{{ body.pr.number "', "template syntax error"),
        ("source: github", "source: Git Hub", "triggers[0].webhook.source"),
        ("      source: github\n", "      source: github\n      schedule: daily\n", "unknown key"),
    ],
)
def test_bad_triggers_are_reported_with_their_position(old: str, new: str, expected: str) -> None:
    assert old in BASE
    spec, errors = load(BASE.replace(old, new))
    assert spec is None
    assert any(expected in e for e in errors), errors


def test_a_trigger_must_set_required_inputs_and_only_declared_ones() -> None:
    _, errors = load(BASE.replace('title: "PR {{ body.pr.title }}", ', ""))
    assert errors == [
        "t.yaml:8:1: triggers: triggers[0] (source 'github') does not set required input 'title'"
    ]
    _, errors = load(BASE.replace('n: "{{ body.pr.number }}"', "m: 1"))
    assert any("sets unknown input 'm'" in e for e in errors), errors


def test_definitions_without_triggers_keep_their_checksum() -> None:
    spec, _ = load(BASE)
    assert spec is not None
    plain = spec.model_copy(update={"triggers": []})
    dumped = plain.model_dump(mode="json", by_alias=True)
    assert "triggers" not in dumped
    assert "triggers" in spec.model_dump(mode="json", by_alias=True)
    assert spec_checksum(plain) != spec_checksum(spec)
    # The stored spec round-trips, triggers included.
    assert OrchestrationSpec.model_validate(spec.model_dump(mode="json", by_alias=True)) == spec
