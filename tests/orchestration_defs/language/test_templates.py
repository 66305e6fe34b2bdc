# ruff: noqa: E501  (template bombs read best on one line each)
"""Templates: native types for whole values, strict undefined, the sandbox, references."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest

from orchestration_defs.language.template_limits import TemplateLimits
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


# --- limits: template bombs ------------------------------------------------------------------

BOMB_CONTEXT: dict[str, Any] = {
    "inputs": {
        "s": "x" * 10_000,
        "n": 10**6,
        "l": list(range(1000)),
        "refs": ["x" * 10_000] * 250,  # one string 250 times: 2.5 MB once serialized
    },
    "steps": {},
    "run": {"id": "run-1"},
}

# Fewer iterations than the default, so that the iteration limit, not the clock of a busy
# machine, is what stops the loops here (the deadline has its own test).
BOMB_LIMITS = TemplateLimits(max_iterations=5_000, max_seconds=120)
ITERATIONS = "exceeded 5000 iterations"
OVER = "would be over 2000000 characters"
BOMBS = {
    "nested-loops": (
        "{% for a in inputs.s %}{% for b in inputs.s %}{% endfor %}{% endfor %}",
        ITERATIONS,
    ),
    "nested-loops-output": (
        "{% for a in inputs.s %}{% for b in inputs.s %}{{ b }}{% endfor %}{% endfor %}",
        ITERATIONS,
    ),
    "nested-ranges": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        ITERATIONS,
    ),
    "loop-in-a-filter": (
        "{{ inputs.s | map('upper') | map('lower') | map('title') | list | join | length }}{% for a in inputs.s %}{% for b in inputs.l %}{% endfor %}{% endfor %}",
        ITERATIONS,
    ),
    "str-repetition": ("{{ 'x' * 10**9 }}", "repetition over 2000000 times"),
    "str-repetition-reversed": ("{{ 10**9 * 'x' }}", "repetition over 2000000 times"),
    "str-repetition-of-data": ("a{{ inputs.s * inputs.n }}", OVER),
    "list-repetition": ("{{ [1] * 10**9 }}", "repetition over 2000000 times"),
    "list-of-references": ("{{ [inputs.l] * 1000 }}", OVER),
    "power": ("{{ 2 ** 100000000 }}", "number over 65536 bits"),
    "power-tower": ("{{ 9 ** (9 ** 9) }}", "number over 65536 bits"),
    "squaring": (
        "{% set ns = namespace(x=3) %}{% for i in range(100) %}{% set ns.x = ns.x * ns.x %}{% endfor %}",
        "number over 65536 bits",
    ),
    "concat-doubling": (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "concatenation " + OVER,
    ),
    "plus-doubling": (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "concatenation " + OVER,
    ),
    "list-doubling": (
        "{% set ns = namespace(s=[inputs.s]) %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "concatenation " + OVER,
    ),
    "join-separator": ("{{ inputs.l | join('y' * 100000) }}", "'join' result " + OVER),
    "str-join": ("{{ ('y' * 100000).join(inputs.l | map('string')) }}", "join " + OVER),
    "replace-filter": ("{{ inputs.s | replace('x', 'y' * 100000) }}", "'replace' result " + OVER),
    "str-replace": ("{{ inputs.s.replace('x', 'y' * 100000) }}", "str.replace " + OVER),
    "center-filter": ("{{ 'x' | center(10**9) }}", "over the limit of 2000000"),
    "str-center": ("{{ 'x'.center(10**9) }}", "over the limit of 2000000"),
    "str-ljust": ("{{ 'x'.ljust(10**8) }}", "over the limit of 2000000"),
    "str-zfill": ("{{ 'x'.zfill(10**8) }}", "over the limit of 2000000"),
    "expandtabs": ("{{ ('\t' * 100000).expandtabs(100000) }}", "str.expandtabs " + OVER),
    "translate": ("{{ inputs.s.translate({120: 'y' * 100000}) }}", "str.translate " + OVER),
    "format-filter-width": ("{{ '%0999999999d' | format(1) }}", "format width over 2000000"),
    "format-filter-star": ("{{ '%*d' | format(999999999, 1) }}", "over the limit of 2000000"),
    "percent-width": ("{{ '%0999999999d' % 1 }}", "format width over 2000000"),
    "percent-star": ("{{ '%*d' % (5, 1) }}", "'*' width is not allowed"),
    "brace-format": ("{{ '{:>999999999}'.format(1) }}", "format width over 2000000"),
    "brace-format-nested": ("{{ '{:>{w}}'.format(1, w=999999999) }}", "over the limit of 2000000"),
    "indent": ("{{ ('\n' * 100000) | indent(100000) }}", "'indent' result " + OVER),
    "indent-prefix": ("{{ ('\n' * 100000) | indent('x' * 100000) }}", "'indent' result " + OVER),
    "wordwrap": ("{{ ('a' * 1000000) | wordwrap(1) }}", "'wordwrap' result " + OVER),
    "wordwrap-string": (
        "{{ inputs.s | wordwrap(1, wrapstring='y' * 1000) }}",
        "'wordwrap' result " + OVER,
    ),
    "batch": ("{{ [1] | batch(10**9, 'x') | list }}", "over the limit of 5000"),
    "slice": ("{{ [1] | slice(10**7) | list }}", "over the limit of 5000"),
    "sum-of-lists": (
        "{{ [[1] * 1000] * 1000 | sum(start=[]) | length }}",
        "'sum' adds numbers only",
    ),
    "macro-recursion": (
        "{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(0) }}",
        "nested too deeply",
    ),
    "macro-fan-out": (
        "{% macro f(n) %}{% if n < 40 %}{{ f(n+1) }}{{ f(n+1) }}{% endif %}{% endmacro %}{{ f(0) }}",
        ITERATIONS,
    ),
    "caller-fan-out": (
        "{% macro f() %}{{ caller() }}{{ caller() }}{% endmacro %}"
        + "{% call f() %}" * 30
        + "x"
        + "{% endcall %}" * 30,
        ITERATIONS,
    ),
    "recursive-loop": (
        "{% for a in [1] recursive %}{{ loop([1, 1]) }}{% endfor %}",
        "nested too deeply",
    ),
    "recursive-loop-wide": (
        "{% for a in [1] recursive %}{% if loop.depth < 30 %}{{ loop([1, 1]) }}{% endif %}{% endfor %}",
        ITERATIONS,
    ),
    "range": ("{{ range(10**9) | list }}", "Range too big"),
    "range-loop": ("{% for i in range(10**9) %}{% endfor %}", "Range too big"),
    "loop-cycle": (
        "{% for i in range(1000) %}{{ loop.cycle('a' * 10000, 'b') }}{% endfor %}",
        "output " + OVER,
    ),
    "dict-growth": (
        "{% set ns = namespace(d={}) %}{% for i in range(100000) %}{% set ns.d = dict(ns.d, **{('k' ~ i): inputs.s}) %}{% endfor %}",
        "dict(...) result " + OVER,
    ),
    "block-set-doubling": (
        "{% set ns = namespace(s='xxxxxxxxxx') %}{% for i in range(100) %}{% set block %}{{ ns.s }}{{ ns.s }}{% endset %}{% set ns.s = block %}{% endfor %}",
        "output " + OVER,
    ),
    "output-of-references": ("x{{ [inputs.l] * 1000 }}", OVER),
    "tojson-of-references": ("{{ inputs.refs | tojson }}", "'tojson' input " + OVER),
    "lipsum": ("{{ lipsum(10**6) }}", "'lipsum' is undefined"),
    "deep-parentheses": ("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "nested too deeply"),
    "huge-int-text": ("{{ 10 ** 5000 }}x", "ValueError"),
    # Bytes (``str.encode``) and ints have growing methods of their own: the str checks apply.
    "bytes-zfill": ("{{ 'x'.encode().zfill(10**8) }}", "over the limit of 2000000"),
    "bytes-ljust": ("{{ 'x'.encode().ljust(10**8) }}", "over the limit of 2000000"),
    "bytes-center": ("{{ 'x'.encode().center(10**8) }}", "over the limit of 2000000"),
    "bytes-expandtabs": (
        "{{ ('\t' * 100000).encode().expandtabs(100000) }}",
        "bytes.expandtabs " + OVER,
    ),
    "bytes-replace": (
        "{{ inputs.s.encode().replace('x'.encode(), ('y' * 100000).encode()) }}",
        "bytes.replace " + OVER,
    ),
    "bytes-join": ("{{ ('y' * 100000).encode().join(['a'.encode()] * 100) }}", "join " + OVER),
    "bytes-percent-width": ("{{ '%0999999999d'.encode() % 1 }}", "format width over 2000000"),
    "bytes-percent-star": ("{{ '%*d'.encode() % (5, 1) }}", "'*' width is not allowed"),
    "encode-growth": ("{{ (inputs.s * 150).encode('utf-32') }}", "call result " + OVER),
    "int-to-bytes": ("{{ (1).to_bytes(10**9, 'big') }}", "over the limit of 2000000"),
    "filter-chain": ("{{ inputs.s" + " | upper" * 5000 + " }}", "nested too deeply"),
    "attribute-chain": ("{{ inputs" + ".a" * 5000 + " }}", "nested too deeply"),
}

CHAINS = {
    "filters": "{{ x" + "|upper" * 20000 + " }}",
    "attributes": "{{ inputs" + ".a" * 20000 + " }}",
    "items": "{{ inputs" + "[0]" * 20000 + " }}",
    "calls": "{{ f" + "()" * 20000 + " }}",
}


@pytest.mark.parametrize("template", CHAINS.values(), ids=CHAINS.keys())
def test_long_chains_are_a_syntax_error_when_validated_not_a_recursion_error(
    template: str,
) -> None:
    # Jinja parses chains without recursing; every walk of the tree afterwards recursed.
    with pytest.raises(TemplateError, match="nested too deeply"):
        references(template)


@pytest.mark.parametrize(("template", "expected"), BOMBS.values(), ids=BOMBS.keys())
def test_template_bombs_stop_with_a_clear_error_naming_the_field(
    template: str, expected: str
) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError) as info:
            render({"prompt": template}, BOMB_CONTEXT, field="with", limits=BOMB_LIMITS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert message.startswith("with.prompt: ")
    assert expected in message
    assert peak < 64 * 1024 * 1024  # a small multiple of the 2,000,000-character limit


def test_the_deadline_stops_a_render_that_stays_within_every_other_limit() -> None:
    template = "{% for a in inputs.l %}{% for b in inputs.l %}{% endfor %}{% endfor %}"
    limits = TemplateLimits(max_iterations=10**9)
    with pytest.raises(TemplateError, match=r"exceeded its time limit of 0\.05 s"):
        render(template, BOMB_CONTEXT, limits=limits, deadline=time.monotonic() + 0.05)


def test_a_deadline_already_past_stops_at_the_first_step() -> None:
    with pytest.raises(TemplateError, match="exceeded its time limit"):
        render("{% for a in [1, 2] %}{{ a }}{% endfor %}", BOMB_CONTEXT, deadline=0.0)


def test_one_budget_covers_every_string_of_the_value() -> None:
    loop = "{% for a in inputs.l %}{% endfor %}"
    limits = TemplateLimits(max_iterations=2_500)
    render([loop, loop], BOMB_CONTEXT, limits=limits)
    with pytest.raises(TemplateError, match=r"^\[2\]: template exceeded 2500 iterations"):
        render([loop, loop, loop], BOMB_CONTEXT, limits=limits)


def test_errors_name_the_path_inside_the_field() -> None:
    value = {"a": ["ok", {"b": "{{ inputs.missing }}"}]}
    with pytest.raises(TemplateError, match=r"^with\.a\[1\]\.b: 'dict object' has no attr"):
        render(value, BOMB_CONTEXT, field="with")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ 'ab' * 3 }}", "ababab"),
        ("{{ [1, 2] * 2 }}", [1, 2, 1, 2]),
        ("{{ 2 ** 10 }}", 1024),
        ("{{ 'a' ~ 1 ~ 'b' }}", "a1b"),
        ("{{ inputs.l[:3] | join(', ') }}", "0, 1, 2"),
        ("{{ 'a-b'.replace('-', '+') }}", "a+b"),
        ("{{ '%05d' | format(42) }}", "00042"),
        ("{{ '%s=%s' % ('a', 1) }}", "a=1"),
        ("{{ '{:>5}'.format('x') }}", "    x"),
        ("{{ 'x' | center(5) }}", "  x  "),
        ("{{ 'a b c' | wordwrap(3) }}", "a b\nc"),
        ("{{ inputs.l | sum }}", 499500),
        ("{{ inputs.l | batch(400) | list | length }}", 3),
        ("{% for i in range(3) %}{{ loop.index }}{% endfor %}", "123"),
        ("{% for i in range(3) %}{{ loop.length }}{% endfor %}", "333"),
        (
            "{% for a in [[1, [2]], [3]] recursive %}{% if a is iterable %}{{ loop(a) }}{% else %}{{ a }}{% endif %}{% endfor %}",
            "123",
        ),
        (
            "{% macro f(n) %}{% if n %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}",
            "321",
        ),
        ("{{ dict(a=1, b=2) }}", {"a": 1, "b": 2}),
        ("{{ inputs.s | length }}", 10_000),
    ],
)
def test_ordinary_templates_are_unchanged_by_the_limits(template: str, expected: Any) -> None:
    assert render(template, BOMB_CONTEXT) == expected


def test_a_whole_earlier_output_passes_through() -> None:
    big = {"text": "y" * 1_500_000}
    context = {**BOMB_CONTEXT, "steps": {"a": {"output": big, "status": "completed"}}}
    assert render("{{ steps.a.output }}", context) is big
    assert len(render("Summary of: {{ steps.a.output.text }}", context)) == 1_500_012


def test_limits_come_from_the_caller() -> None:
    limits = TemplateLimits(max_chars=100)
    assert render("{{ 'x' * 100 }}", BOMB_CONTEXT, limits=limits) == "x" * 100
    with pytest.raises(TemplateError, match="repetition over 100 times"):
        render("{{ 'x' * 101 }}", BOMB_CONTEXT, limits=limits)
    with pytest.raises(TemplateError, match="output would be over 100 characters"):
        render("{{ 'x' * 60 }}{{ 'y' * 60 }}", BOMB_CONTEXT, limits=limits)
