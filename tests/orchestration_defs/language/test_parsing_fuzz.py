"""Fuzzing the YAML loader and template rendering (hypothesis, fixed budget, derandomized):
whatever the input, the only errors are YamlProblem and TemplateError, and memory stays
bounded."""

from __future__ import annotations

import contextlib
import tracemalloc
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestration_defs.language.template_limits import TemplateLimits
from orchestration_defs.language.templates import TemplateError, render
from orchestration_defs.language.yaml_loader import YamlProblem, load_yaml

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
MEMORY_BOUND = 64 * 1024 * 1024

# YAML made of the pieces bombs are made of, so the fuzzer reaches them quickly.
YAML_PIECES = st.sampled_from(
    [
        "a: ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ", ",
        ": ",
        "\n",
        "  ",
        "&a ",
        "&b ",
        "*a",
        "*b",
        "<<: ",
        "!!python/name:os.system ",
        "!!python/object/apply:os.system ",
        "!foo ",
        "!!str ",
        "!!int ",
        "!!binary ",
        "? ",
        "'",
        '"',
        "#",
        "---\n",
        "%TAG ! x\n",
        "1:2:3",
        "0x1f",
        "1e400",
        "~",
        "=",
        "lol",
        "\t",
        "|\n",
        ">\n",
        "\ufeff",
        "\x00",
    ]
)
YAML_TEXT = st.one_of(st.lists(YAML_PIECES, max_size=60).map("".join), st.text(max_size=200))


def _laughs(levels: int, width: int, kind: str) -> str:
    if kind == "list":
        lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
        lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    else:
        lines = [f"l0: &l0 {{{', '.join(f'k{j}: lol' for j in range(width))}}}"]
        lines += [
            f"l{i}: &l{i} {{<<: *l{i - 1}, {', '.join(f'k{j}: *l{i - 1}' for j in range(width))}}}"
            for i in range(1, levels)
        ]
    return "\n".join(lines) + "\n"


@FUZZ
@given(YAML_TEXT)
def test_any_yaml_text_loads_or_is_a_yaml_problem(text: str) -> None:
    try:
        load_yaml(text)
    except YamlProblem as exc:
        assert exc.message.startswith("invalid YAML: ")


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=2, max_value=12),
    st.sampled_from(["list", "merge"]),
)
def test_alias_bombs_of_any_shape_are_refused_in_bounded_memory(
    levels: int, width: int, kind: str
) -> None:
    tracemalloc.start()
    try:
        try:
            load_yaml(_laughs(levels, width, kind))
        except YamlProblem as exc:
            assert exc.line is not None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND


TEMPLATE_PIECES = st.sampled_from(
    [
        "{{ ",
        " }}",
        "{% for x in inputs.s %}",
        "{% for y in inputs.l %}",
        "{% endfor %}",
        "{% set ns = namespace(v='ab') %}",
        "{% set ns.v = ns.v ~ ns.v %}",
        "{% set ns.v = ns.v + ns.v %}",
        "{{ ns.v }}",
        "'x' * 1000000",
        "inputs.n * inputs.n",
        "2 ** 99999",
        " ~ ",
        " * ",
        " ** ",
        " + ",
        " % ",
        "inputs.s",
        "inputs.l",
        "inputs.n",
        " | join('y' * 1000)",
        " | replace('x', 'yyyyyyyyyy')",
        " | indent(1000)",
        " | wordwrap(1)",
        " | center(100000)",
        " | list",
        " | tojson",
        "'%0999d' % 1",
        "{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}",
        "{{ f(1) }}",
        "range(100000)",
        "loop.cycle('a', 'b')",
        "dict(a=inputs.s)",
        "(",
        ")",
        "[",
        "]",
        "x",
        "1",
        "{%",
        "%}",
    ]
)
TEMPLATE_TEXT = st.lists(TEMPLATE_PIECES, max_size=12).map("".join)
CONTEXT: dict[str, Any] = {
    "inputs": {"s": "x" * 2000, "l": list(range(300)), "n": 10**5},
    "steps": {},
    "run": {"id": "run-1"},
}
LIMITS = TemplateLimits(max_chars=200_000, max_total_chars=2_000_000, max_iterations=20_000)


@FUZZ
@given(TEMPLATE_TEXT)
def test_any_template_renders_or_is_a_template_error_in_bounded_memory(template: str) -> None:
    tracemalloc.start()
    try:
        with contextlib.suppress(TemplateError):  # the only error allowed
            render(template, CONTEXT, limits=LIMITS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND
