"""The step graph: dependencies from needs and templates, cycles, order."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration_defs.language.graph import (
    ancestors,
    descendants,
    find_cycles,
    finish_dependencies,
    retry_step_of,
    step_dependencies,
    template_strings,
    topological_order,
)
from orchestration_defs.language.models import OrchestrationSpec, StepSpec


def spec_of(*steps: dict[str, Any]) -> OrchestrationSpec:
    return OrchestrationSpec.model_validate(
        {"slug": "g", "name": "Graph", "version": 1, "steps": list(steps)}
    )


def agent(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "agent": "echo", **extra}


def test_template_strings_finds_with_when_and_checkpoint_texts() -> None:
    raw = {
        "id": "x",
        "with": {"a": "{{ steps.p.output }}", "b": ["plain", "{{ inputs.n }}"], "c": 3},
        "when": "{{ inputs.go }}",
        "checkpoint": {"prompt": "Ok {{ steps.q.output }}?", "show": {"v": "{{ steps.r }}"}},
    }
    assert template_strings(raw) == [
        (("with", "a"), "{{ steps.p.output }}"),
        (("with", "b", 1), "{{ inputs.n }}"),
        (("checkpoint", "prompt"), "Ok {{ steps.q.output }}?"),
        (("checkpoint", "show", "v"), "{{ steps.r }}"),
        (("when",), "{{ inputs.go }}"),
    ]
    assert template_strings({"id": "y", "when": True, "with": "plain"}) == []


def test_dependencies_from_templates_are_added_automatically() -> None:
    step = StepSpec.model_validate(
        agent(
            "c",
            needs=["z", "a"],
            with_={"x": "{{ steps.b.output }} {{ steps.a.output }}", "y": "{{ steps.d.status }}"},
            when="{{ steps.e.output.go }}",
        )
    )
    # explicit needs first in their order, then template references, each once
    assert step_dependencies(step) == ["z", "a", "b", "d", "e"]


def test_checkpoint_templates_are_dependencies() -> None:
    step = StepSpec.model_validate(
        {"id": "review", "checkpoint": {"prompt": "Publish {{ steps.draft.output.title }}?"}}
    )
    assert step_dependencies(step) == ["draft"]


def test_inputs_and_run_are_not_dependencies() -> None:
    step = StepSpec.model_validate(agent("a", with_="{{ inputs.x }} {{ run.id }}"))
    assert step_dependencies(step) == []


def test_duplicate_needs_count_once() -> None:
    assert step_dependencies(StepSpec.model_validate(agent("a", needs=["b", "b"]))) == ["b"]


@pytest.mark.parametrize(
    ("graph", "cycles"),
    [
        ({"a": [], "b": ["a"], "c": ["a", "b"]}, []),
        ({"a": ["b"], "b": ["a"]}, [["a", "b", "a"]]),
        ({"a": ["a"]}, [["a", "a"]]),
        ({"a": ["c"], "b": ["a"], "c": ["b"]}, [["a", "c", "b", "a"]]),
        ({"a": ["ghost"], "b": ["a"]}, []),
        (
            {"a": ["b"], "b": ["a"], "c": ["c"], "d": ["a"]},
            [["a", "b", "a"], ["c", "c"]],
        ),
    ],
    ids=["acyclic", "two", "self", "three", "unknown-deps-ignored", "several"],
)
def test_find_cycles(graph: dict[str, list[str]], cycles: list[list[str]]) -> None:
    assert find_cycles(graph) == cycles


def test_cycle_path_text() -> None:
    assert [" -> ".join(c) for c in find_cycles({"a": ["b"], "b": ["a"]})] == ["a -> b -> a"]
    assert [" -> ".join(c) for c in find_cycles({"a": ["a"]})] == ["a -> a"]


def test_topological_order_puts_dependencies_first_and_keeps_file_order() -> None:
    spec = spec_of(
        agent("report", with_={"x": "{{ steps.greet.output }}"}),
        agent("greet"),
        agent("extra"),
        agent("last", needs=["report"]),
    )
    assert topological_order(spec) == ["greet", "extra", "report", "last"]


def test_topological_order_of_independent_steps_is_file_order() -> None:
    assert topological_order(spec_of(agent("b"), agent("a"), agent("c"))) == ["b", "a", "c"]


def test_topological_order_refuses_a_cycle() -> None:
    # the models alone do not look for cycles; validation does
    spec = spec_of(agent("a", needs=["b"]), agent("b", with_="{{ steps.a.output }}"))
    with pytest.raises(ValueError, match="cycle"):
        topological_order(spec)


def test_ancestors_and_descendants() -> None:
    spec = spec_of(
        agent("a"),
        agent("b", needs=["a"]),
        agent("c", with_="{{ steps.b.output }}"),
        agent("d"),
    )
    graph = {s.id: step_dependencies(s) for s in spec.steps}
    assert ancestors(graph, "c") == {"a", "b"}
    assert ancestors(graph, "d") == set()
    assert descendants(spec, "a") == ["a", "b", "c"]
    assert descendants(spec, "c") == ["c"]


def test_retry_step_of_a_checkpoint() -> None:
    spec = spec_of(
        agent("draft"),
        agent("other"),
        {"id": "one", "checkpoint": {"prompt": "{{ steps.draft.output }}"}},
        {"id": "two", "needs": ["draft", "other"], "checkpoint": {"prompt": "ok?"}},
        {
            "id": "named",
            "needs": ["draft", "other"],
            "checkpoint": {"prompt": "ok?", "retry_step": "other"},
        },
    )
    assert retry_step_of(spec, spec.step("one")) == "draft"
    assert retry_step_of(spec, spec.step("two")) is None
    assert retry_step_of(spec, spec.step("named")) == "other"
    assert retry_step_of(spec, spec.step("draft")) is None


def _with_outputs(outputs: Any) -> OrchestrationSpec:
    return OrchestrationSpec.model_validate(
        {
            "slug": "g",
            "name": "Graph",
            "version": 1,
            "steps": [
                agent("a"),
                agent("b", needs=["a"]),
                {"id": "gate", "needs": ["a"], "checkpoint": {"prompt": "ok?"}},
                agent("c", with_="{{ steps.b.output }}", when="{{ steps.gate.output }}"),
                agent("lone"),
            ],
            "outputs": outputs,
        }
    )


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        # The last steps only: every other step comes before one of them.
        ({}, ["c", "lone"]),
        ({"x": "plain text"}, ["c", "lone"]),
        # Steps named by attribute or by a constant key, in definition order.
        ({"x": "{{ steps.a.output }}", "y": ["{{ steps['b'].status }}"]}, ["a", "b", "c", "lone"]),
        ({"x": "{{ steps.gate.output.decision }} {{ inputs.n }}"}, ["gate", "c", "lone"]),
        # Anything that may read any step's result takes them all.
        ({"x": "{% for s in steps %}{{ s }}{% endfor %}"}, ["a", "b", "gate", "c", "lone"]),
        ({"x": "{{ steps | length }}"}, ["a", "b", "gate", "c", "lone"]),
        ({"x": "{% for k in ['a'] %}{{ steps[k] }}{% endfor %}"}, ["a", "b", "gate", "c", "lone"]),
        ({"x": "{% set s = steps %}{{ s.a }}"}, ["a", "b", "gate", "c", "lone"]),
        ({"all": "{{ steps }}"}, ["a", "b", "gate", "c", "lone"]),
    ],
)
def test_finish_takes_the_last_steps_and_the_named_ones(outputs: Any, expected: list[str]) -> None:
    assert finish_dependencies(_with_outputs(outputs)) == expected
