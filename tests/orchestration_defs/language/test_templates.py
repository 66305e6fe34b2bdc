"""Templates: native types for whole values, strict undefined, the sandbox, references."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration_defs.language.templates import (
    TemplateError,
    is_template,
    references,
    render,
    truthy,
    walk_strings,
)


@pytest.fixture
def context() -> dict[str, Any]:
    return {
        "inputs": {
            "topic": "release notes",
            "sections": ["intro", "body"],
            "options": {"depth": 2, "draft": True},
            "count": 3,
            "flag": False,
            "items": "a key, not dict.items",
        },
        "steps": {
            "plan": {"output": {"sections": ["a", "b", "c"], "title": "x"}, "status": "completed"},
            "teaser": {"output": None, "status": "skipped"},
        },
        "run": {"id": "run-1"},
    }


# --- native types ---------------------------------------------------------------------------


def test_a_whole_value_template_passes_a_list_through(context: dict[str, Any]) -> None:
    result = render("{{ inputs.sections }}", context)
    assert result == ["intro", "body"]
    assert isinstance(result, list)


def test_a_whole_value_template_passes_a_dict_through(context: dict[str, Any]) -> None:
    result = render("{{ inputs.options }}", context)
    assert result == {"depth": 2, "draft": True}
    assert isinstance(result, dict)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.count }}", 3),
        ("{{ inputs.flag }}", False),
        ("{{ steps.teaser.output }}", None),
        ("{{ steps.plan.output.sections | length }}", 3),
        ("{{ steps.plan.output.sections[1:] }}", ["b", "c"]),
        ("  {{ inputs.sections }}\n", ["intro", "body"]),
        ("{{- inputs.sections -}}", ["intro", "body"]),
        ("{{+ inputs.count }}", 3),
        ("{{ inputs.count * 2 }}", 6),
    ],
)
def test_whole_value_templates_keep_native_types(
    context: dict[str, Any], template: str, expected: Any
) -> None:
    assert render(template, context) == expected
    assert type(render(template, context)) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Topic: {{ inputs.topic }}", "Topic: release notes"),
        ("{{ inputs.count }} sections", "3 sections"),
        ("{{ inputs.count }}{{ inputs.count }}", "33"),
        ("{{ inputs.sections }} ", ["intro", "body"]),
        ("a {{ inputs.sections }}", "a ['intro', 'body']"),
        ("{% if inputs.flag %}yes{% else %}no{% endif %}", "no"),
        ("{{ inputs.topic | title }}", "Release Notes"),
        ("{{ inputs.options | tojson }}", '{"depth": 2, "draft": true}'),
        ("{{ run.id }}!", "run-1!"),
    ],
)
def test_mixed_templates_render_strings(
    context: dict[str, Any], template: str, expected: Any
) -> None:
    assert render(template, context) == expected


def test_render_walks_dicts_and_lists_and_leaves_other_values(context: dict[str, Any]) -> None:
    value = {
        "title": "{{ inputs.topic }}",
        "parts": ["{{ inputs.sections }}", "plain", 7, None],
        "nested": {"n": "{{ inputs.count }}", "ok": True},
    }
    assert render(value, context) == {
        "title": "release notes",
        "parts": [["intro", "body"], "plain", 7, None],
        "nested": {"n": 3, "ok": True},
    }
    assert render(5, context) == 5
    assert render("no template here", context) == "no template here"


def test_dict_keys_win_over_dict_methods(context: dict[str, Any]) -> None:
    assert render("{{ inputs.items }}", context) == "a key, not dict.items"


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{ inputs.missing }}",
        "Hello {{ inputs.missing }}",
        "{{ steps.plan.output.nothing }}",
        "{{ steps.plan.output.nothing.deeper }}",
        "{{ steps.unknown.output }}",
        "{{ nobody }}",
        "{% if inputs.missing %}x{% endif %}",
    ],
)
def test_undefined_names_raise(context: dict[str, Any], template: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(template, context)
    assert repr(template) in str(info.value)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ().__class__ }}",
        "{{ ().__class__.__bases__[0].__subclasses__() }}",
        "x {{ ().__class__ }}",
        "{{ inputs.topic.__class__ }}",
        "{{ inputs.sections.append(3) }}",
        "{{ inputs.options.update({'depth': 0}) }}",
    ],
)
def test_the_sandbox_blocks_unsafe_access(context: dict[str, Any], template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, context)
    assert context["inputs"]["sections"] == ["intro", "body"]
    assert context["inputs"]["options"] == {"depth": 2, "draft": True}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.topic ", "unexpected end of template"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ inputs.count + 'x' }}", "TypeError"),
    ],
)
def test_broken_templates_raise(context: dict[str, Any], template: str, expected: str) -> None:
    with pytest.raises(TemplateError, match=expected):
        render(template, context)


def test_is_template() -> None:
    assert is_template("{{ x }}")
    assert is_template("{% if x %}y{% endif %}")
    assert not is_template("plain { text }")


def test_walk_strings_gives_paths() -> None:
    value = {"a": "x", "b": [1, "y", {"c": "z"}], "d": None}
    assert list(walk_strings(value)) == [(("a",), "x"), (("b", 1), "y"), (("b", 2, "c"), "z")]
    assert list(walk_strings("s", ("root",))) == [(("root",), "s")]


# --- references -----------------------------------------------------------------------------


def test_references_finds_steps_inputs_and_unknown_roots() -> None:
    refs = references(
        "{{ steps.plan.output.title }} {{ steps['draft'].status }} {{ inputs.topic }}"
        " {{ run.id }} {{ secrets.key }} {{ env }}"
    )
    assert refs.steps == {"plan", "draft"}
    assert refs.inputs == {"topic"}
    assert refs.unknown_roots == {"secrets", "env"}


def test_references_in_statements_and_filters() -> None:
    refs = references(
        "{% if inputs.flag %}{{ steps.a.output | tojson }}{% endif %}"
        "{{ steps.b.output.x | default(inputs.fallback) }}"
    )
    assert refs.steps == {"a", "b"}
    assert refs.inputs == {"flag", "fallback"}
    assert refs.unknown_roots == frozenset()


def test_names_assigned_in_the_template_are_not_unknown() -> None:
    refs = references(
        "{% set total = inputs.count %}{% for s in steps.plan.output.sections %}"
        "{{ loop.index }}: {{ s }} of {{ total }}{% endfor %}"
    )
    assert refs.unknown_roots == frozenset()
    assert refs.steps == {"plan"}
    assert refs.inputs == {"count"}


def test_loop_outside_a_for_loop_is_unknown() -> None:
    assert references("{{ loop.index }}").unknown_roots == {"loop"}


def test_a_dynamic_step_lookup_is_not_a_reference() -> None:
    refs = references("{{ steps[inputs.which].output }}")
    assert refs.steps == frozenset()
    assert refs.inputs == {"which"}


def test_references_of_a_broken_template_raise() -> None:
    with pytest.raises(TemplateError, match="template syntax error"):
        references("{{ steps.a.output ")


# --- truthy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [False, None, 0, "", "false", "False", " FALSE ", "no", "No", "0", "off", "none", "null", []],
)
def test_falsy_when_values(value: Any) -> None:
    assert truthy(value) is False


@pytest.mark.parametrize("value", [True, 1, "true", "yes", "1", "anything", [0], {"a": 1}])
def test_truthy_when_values(value: Any) -> None:
    assert truthy(value) is True
