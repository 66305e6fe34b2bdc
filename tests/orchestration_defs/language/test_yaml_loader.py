"""YAML loading with line and column positions."""

from __future__ import annotations

import textwrap

import pytest

from orchestration_defs.language.yaml_loader import Positions, YamlProblem, load_yaml

DOC = textwrap.dedent(
    """\
    slug: demo
    steps:
      - id: a
        agent: echo
      - id: b
        with:
          text: hi
    """
)


def test_data_is_plain_python() -> None:
    data, _, problems = load_yaml(DOC)
    assert data == {
        "slug": "demo",
        "steps": [{"id": "a", "agent": "echo"}, {"id": "b", "with": {"text": "hi"}}],
    }
    assert problems == []


def test_positions_of_keys_and_items_are_one_based() -> None:
    _, positions, _ = load_yaml(DOC)
    assert positions.find(()) == (1, 1)
    assert positions.find(("slug",)) == (1, 1)
    assert positions.find(("steps",)) == (2, 1)
    assert positions.find(("steps", 0)) == (3, 5)
    assert positions.find(("steps", 0, "agent")) == (4, 5)
    assert positions.find(("steps", 1)) == (5, 5)
    assert positions.find(("steps", 1, "with", "text")) == (7, 7)


def test_find_falls_back_to_the_nearest_ancestor() -> None:
    _, positions, _ = load_yaml(DOC)
    assert positions.find(("steps", 1, "with", "text", "deeper", 3)) == (7, 7)
    assert positions.find(("steps", 0, "needs")) == (3, 5)
    assert positions.find(("nothing", "here")) == (1, 1)
    assert Positions().find(("x",)) == (None, None)


def test_empty_document() -> None:
    data, positions, problems = load_yaml("# only a comment\n")
    assert data is None
    assert positions.find(()) == (None, None)
    assert problems == []


def test_duplicate_keys_are_reported_with_their_place() -> None:
    data, positions, problems = load_yaml("slug: one\nname: x\nslug: two\n")
    assert [(p.message, p.line, p.column) for p in problems] == [("duplicate key 'slug'", 3, 1)]
    assert data["slug"] == "two"
    assert positions.find(("slug",)) == (3, 1)


def test_nested_duplicate_keys() -> None:
    text = "steps:\n  - id: a\n    agent: echo\n    agent: other\n"
    _, _, problems = load_yaml(text)
    assert [(p.message, p.line, p.column) for p in problems] == [("duplicate key 'agent'", 4, 5)]


def test_non_scalar_keys_are_problems() -> None:
    data, _, problems = load_yaml("? [a, b]\n: 1\nc: 2\n")
    assert data == {"c": 2}
    assert [(p.message, p.line) for p in problems] == [("mapping keys must be scalars", 1)]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("slug: demo\nname: [unclosed\nversion: 1\n", 3),
        ("slug: demo\n  name: bad indent\n", 2),
        ("slug: demo\nname: 'open\n", 3),
        ("a: 1\n---\nb: 2\n", 2),
    ],
    ids=["unclosed-flow", "indent", "unclosed-quote", "two-documents"],
)
def test_broken_yaml_raises_with_a_line(text: str, line: int) -> None:
    with pytest.raises(YamlProblem) as info:
        load_yaml(text)
    assert info.value.message.startswith("invalid YAML: ")
    assert info.value.line == line
    assert info.value.column is not None


def test_merge_keys_and_aliases_are_resolved() -> None:
    text = textwrap.dedent(
        """\
        base: &base {agent: echo, timeout_seconds: 5}
        step:
          <<: *base
          id: a
        again: *base
        """
    )
    data, _, problems = load_yaml(text)
    assert data["step"] == {"agent": "echo", "timeout_seconds": 5, "id": "a"}
    assert data["again"] == {"agent": "echo", "timeout_seconds": 5}
    assert problems == []


@pytest.mark.parametrize("text", ["a: &x [*x]\n", "a: &x {b: *x}\n"])
def test_a_recursive_alias_is_a_problem_not_a_crash(text: str) -> None:
    with pytest.raises(YamlProblem) as info:
        load_yaml(text)
    assert "recursive alias" in info.value.message
    assert info.value.line == 1


def test_scalars_keep_yaml_types() -> None:
    data, _, _ = load_yaml("a: 1\nb: 1.5\nc: true\nd: null\ne: '1'\nf: no\n")
    assert data == {"a": 1, "b": 1.5, "c": True, "d": None, "e": "1", "f": False}
