"""Orchestration steps: the step's own keys, and the checks across the library's files."""

from __future__ import annotations

import textwrap
from pathlib import Path

from orchestration_defs.language.library import load_library, load_text
from orchestration_defs.language.models import StepSpec

AGENTS = frozenset({"echo"})

CHILD = """
slug: child
name: Child
version: 1
inputs:
  start: {type: string, required: true}
  months: {type: integer, default: 3}
steps:
  - id: a
    agent: echo
    with: {text: "{{ inputs.start }}"}
outputs:
  text: "{{ steps.a.output.text }}"
"""

PARENT = """
slug: parent
name: Parent
version: 1
inputs:
  periods: {type: array, default: [{start: "2025-01"}]}
steps:
  - id: periods
    orchestration: child
    for_each: "{{ inputs.periods }}"
    max_parallel: 2
    on_child_failure: continue
    with:
      start: "{{ item.start }}"
      months: "{{ index }}"
  - id: after
    agent: echo
    with: {first: "{{ steps.periods.output.children[0].outputs }}"}
"""


def _library(tmp_path: Path, files: dict[str, str], **kw: int) -> tuple[list, list[str]]:
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text).lstrip())
    loaded, errors = load_library([tmp_path], known_agents=AGENTS, **kw)
    return loaded, [str(e) for e in errors]


def test_the_step_syntax_of_the_issue_parses(tmp_path: Path) -> None:
    loaded, errors = _library(tmp_path, {"child.yaml": CHILD, "parent.yaml": PARENT})
    assert errors == []
    parent = next(d.spec for d in loaded if d.spec.slug == "parent")
    step = parent.step("periods")
    assert (step.kind, step.orchestration, step.max_parallel) == ("orchestration", "child", 2)
    assert step.child_failure_policy == "continue"
    assert step.for_each == "{{ inputs.periods }}"


def test_unset_child_keys_leave_checksums_of_older_definitions_alone() -> None:
    dumped = StepSpec(id="a", agent="echo").model_dump(by_alias=True)
    assert not {"version", "for_each", "max_parallel", "on_child_failure"} & set(dumped)


def test_max_parallel_below_one_is_refused_with_its_line() -> None:
    text = textwrap.dedent(PARENT).replace("max_parallel: 2", "max_parallel: 0")
    _, errors = load_text(text, source="parent.yaml", known_agents=AGENTS)
    [error] = errors
    assert (error.line, error.field) == (11, "steps[0].max_parallel")
    assert "greater than or equal to 1" in error.message


def test_child_keys_on_an_agent_step_and_item_without_for_each_are_refused() -> None:
    text = textwrap.dedent(PARENT).replace(
        "  - id: after\n    agent: echo\n", "  - id: after\n    agent: echo\n    max_parallel: 2\n"
    )
    _, errors = load_text(text, source="p.yaml", known_agents=AGENTS)
    assert any("'max_parallel' applies only to orchestration steps" in str(e) for e in errors)
    text = textwrap.dedent(PARENT).replace('    for_each: "{{ inputs.periods }}"\n', "")
    _, errors = load_text(text, source="p.yaml", known_agents=AGENTS)
    messages = [str(e) for e in errors]
    assert any("steps[0].with.start" in m and "'item' is defined only" in m for m in messages)


def test_retry_on_an_orchestration_step_is_refused() -> None:
    text = textwrap.dedent(PARENT).replace("max_parallel: 2", "retry: {max_attempts: 2}")
    _, errors = load_text(text, source="p.yaml", known_agents=AGENTS)
    assert any("takes no 'retry'" in str(e) for e in errors)


def test_an_unknown_slug_or_version_is_refused_with_file_and_line(tmp_path: Path) -> None:
    _, errors = _library(tmp_path, {"parent.yaml": PARENT.replace("child\n", "nope\n", 1)})
    assert errors == [
        f"{tmp_path / 'parent.yaml'}:8:5: steps[0].orchestration: unknown orchestration "
        "'nope' (library: parent)"
    ]
    text = PARENT.replace("orchestration: child", "orchestration: child\n    version: 3")
    _, errors = _library(tmp_path, {"child.yaml": CHILD, "parent.yaml": text})
    assert errors == [
        f"{tmp_path / 'parent.yaml'}:9:5: steps[0].version: orchestration 'child' has no "
        "version 3 (versions in the library: 1)"
    ]


def test_inputs_that_do_not_fit_the_child_are_refused(tmp_path: Path) -> None:
    text = PARENT.replace('      months: "{{ index }}"', "      months: three\n      colour: red")
    text = text.replace('      start: "{{ item.start }}"\n', "")
    _, errors = _library(tmp_path, {"child.yaml": CHILD, "parent.yaml": text})
    source = tmp_path / "parent.yaml"
    assert errors == [
        f"{source}:12:5: steps[0].with: orchestration 'child' v1: required input 'start' "
        "(string) is not set",
        f"{source}:13:7: steps[0].with.months: orchestration 'child' v1: input 'months' must "
        "be of type integer, got str",
        f"{source}:14:7: steps[0].with.colour: orchestration 'child' v1 has no input "
        "'colour' (declared inputs: months, start)",
    ]


def _calling(slug: str, child: str) -> str:
    """A definition ``slug`` with one agent step, then a step running ``child``."""
    text = textwrap.dedent(CHILD).replace("slug: child", f"slug: {slug}")
    text = text.split("outputs:")[0]
    return text + f"  - id: run_{child}\n    orchestration: {child}\n    with: {{start: x}}\n"


def test_a_cycle_across_orchestrations_names_the_whole_chain(tmp_path: Path) -> None:
    _, errors = _library(tmp_path, {"a.yaml": _calling("a", "b"), "b.yaml": _calling("b", "a")})
    assert errors == [
        f"{tmp_path / 'a.yaml'}:12:5: steps[1].orchestration: orchestration cycle: a -> b -> a",
        f"{tmp_path / 'b.yaml'}:12:5: steps[1].orchestration: orchestration cycle: a -> b -> a",
    ]


def test_nesting_deeper_than_the_setting_is_refused(tmp_path: Path) -> None:
    middle = textwrap.dedent(PARENT).replace("slug: parent", "slug: middle")
    top = "slug: top\nname: Top\nversion: 1\nsteps:\n  - id: m\n    orchestration: middle\n"
    files = {"child.yaml": CHILD, "middle.yaml": middle, "top.yaml": top}
    assert _library(tmp_path, files)[1] == []
    _, errors = _library(tmp_path, files, max_depth=1)
    assert errors == [
        f"{tmp_path / 'top.yaml'}:6:5: steps[0].orchestration: nesting too deep: top -> middle "
        "-> child is 2 levels of children; the limit is 1 (BATON_CHILDREN__MAX_DEPTH)"
    ]


def test_a_parent_of_an_invalid_child_is_invalid_too(tmp_path: Path) -> None:
    broken = textwrap.dedent(CHILD).replace(
        "  - id: a\n    agent: echo\n", "  - id: a\n    agent: nope\n"
    )
    _, errors = _library(tmp_path, {"child.yaml": broken, "parent.yaml": PARENT})
    assert any("unknown agent 'nope'" in e for e in errors)
    assert any("parent.yaml" in e and "unknown orchestration 'child'" in e for e in errors)
