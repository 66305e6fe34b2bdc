"""YAML loading with line and column positions, and its limits: bombs, depth, tags, size."""

from __future__ import annotations

import textwrap
import tracemalloc
from pathlib import Path as FilePath

import pytest
import yaml

from orchestration_defs.language import yaml_loader
from orchestration_defs.language.yaml_loader import (
    Positions,
    YamlLimits,
    YamlProblem,
    load_yaml,
    read_text,
)

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


# --- bounded parsing: bombs, depth, tags, size -----------------------------------------------
# Each class is exercised on both event sources: libyaml's parser and PyYAML's own.

BACKENDS = [yaml_loader._PyEvents]
if yaml.__with_libyaml__:
    BACKENDS.append(yaml_loader._c_events())


@pytest.fixture(params=BACKENDS, ids=lambda cls: cls.__name__, autouse=True)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> type:
    monkeypatch.setattr(yaml_loader, "_Events", request.param)
    return request.param


def _laughs_lists(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _laughs_mappings(levels: int = 9) -> str:
    lines = ["m0: &m0 {a: lol, b: lol, c: lol, d: lol, e: lol, f: lol, g: lol, h: lol, i: lol}"]
    for i in range(1, levels):
        items = ", ".join(f"k{j}: *m{i - 1}" for j in range(9))
        lines.append(f"m{i}: &m{i} {{{items}}}")
    return "\n".join(lines) + "\n"


def _laughs_merge(levels: int = 9) -> str:
    # Merge keys copy the merged mapping's entries: the expansion hides inside `<<`.
    lines = ["m0: &m0 {a: lol, b: lol, c: lol, d: lol, e: lol, f: lol, g: lol, h: lol, i: lol}"]
    for i in range(1, levels):
        items = ", ".join(f"k{j}: *m{i - 1}" for j in range(8))
        lines.append(f"m{i}: &m{i} {{<<: *m{i - 1}, {items}}}")
    return "\n".join(lines) + "\n"


def _laughs_block(levels: int = 9) -> str:
    lines = ["l0: &l0", *["  - lol"] * 9]
    for i in range(1, levels):
        lines += [f"l{i}: &l{i}", *[f"  - *l{i - 1}"] * 9]
    return "\n".join(lines) + "\n"


def _laughs_scalar() -> str:
    # Few nodes, but each use of the alias repeats 100,000 characters.
    return "big: &big " + "x" * 100_000 + "\nuses: [" + ", ".join(["*big"] * 60) + "]\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_laughs_lists(), "more than 100000 nodes"),
        (_laughs_mappings(), "more than 100000 nodes"),
        (_laughs_merge(), "more than 100000 nodes"),
        (_laughs_block(), "more than 100000 nodes"),
        (_laughs_scalar(), "more than 4194304 characters"),
    ],
    ids=["nested-lists", "nested-mappings", "merge-keys", "block-style", "big-scalar-alias"],
)
def test_billion_laughs_are_refused_while_composing(text: str, expected: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(YamlProblem) as info:
            load_yaml(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert expected in info.value.message
    assert "an alias counts its whole value each time it is used" in info.value.message
    assert info.value.line is not None and info.value.column is not None
    assert peak < 20 * 1024 * 1024  # the expansion was never built


def test_aliases_within_the_budget_still_work() -> None:
    data, _, problems = load_yaml(_laughs_lists(levels=4))  # 9**4 = 6561 leaves
    assert problems == []
    assert len(data["l3"]) == 9 and data["l3"][8][8][8][8] == "lol"


def test_too_many_aliases_are_refused_with_the_place_of_the_first_over_the_limit() -> None:
    text = "a: &a x\nlist:\n" + "".join("  - *a\n" for _ in range(1001))
    with pytest.raises(YamlProblem) as info:
        load_yaml(text)
    assert "more than 1000 aliases" in info.value.message
    assert (info.value.line, info.value.column) == (1003, 5)


def test_many_anchors_are_bounded_by_the_node_limit() -> None:
    many = "[" + ", ".join(f"&a{i} {i}" for i in range(20_000)) + "]"
    data, _, _ = load_yaml(many)
    assert len(data) == 20_000
    with pytest.raises(YamlProblem, match="more than 1000 nodes"):
        load_yaml(many, YamlLimits(max_nodes=1_000))


def test_limits_can_be_tightened() -> None:
    with pytest.raises(YamlProblem, match="more than 10 nodes"):
        load_yaml("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]", YamlLimits(max_nodes=10))
    with pytest.raises(YamlProblem, match="deeper than 2 levels"):
        load_yaml("a: {b: {c: 1}}", YamlLimits(max_depth=2))
    with pytest.raises(YamlProblem, match="more than 1 aliases"):
        load_yaml("a: &a 1\nb: [*a, *a]", YamlLimits(max_aliases=1))
    with pytest.raises(YamlProblem, match="more than 5 characters"):
        load_yaml("abcdef", YamlLimits(max_scalar_chars=5))
    with pytest.raises(YamlProblem, match="over the 10-byte limit"):
        load_yaml("a: 12345678", YamlLimits(max_bytes=10))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        "{a: " * 50_000 + "1" + "}" * 50_000,
        "- " * 100_000 + "x\n",
        "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "leaf: 1\n",
        "".join("  " * i + "-\n" for i in range(200)) + "  " * 200 + "x\n",
        "[" * 70 + "]" * 70,
    ],
    ids=["flow-lists", "flow-mappings", "compact-sequences", "block-mappings", "block-lists", "70"],
)
def test_deep_nesting_is_a_problem_with_a_place_not_a_recursion_error(text: str) -> None:
    with pytest.raises(YamlProblem) as info:
        load_yaml(text)
    assert "nesting" in info.value.message or "depth" in info.value.message
    assert info.value.line is not None


def test_nesting_up_to_the_limit_is_fine() -> None:
    data, _, _ = load_yaml("[" * 64 + "1" + "]" * 64)
    for _ in range(64):
        data = data[0]
    assert data == 1


def test_aliases_cannot_stack_depth_past_the_limit() -> None:
    # Each level is 20 deep; the alias chain nests them into 20 * 5 levels.
    lines = ["a0: &a0 " + "[" * 20 + "1" + "]" * 20]
    lines += [f"a{i}: &a{i} " + "[" * 20 + f"*a{i - 1}" + "]" * 20 for i in range(1, 5)]
    with pytest.raises(YamlProblem, match="once aliases are expanded") as info:
        load_yaml("\n".join(lines))
    assert info.value.line == 4


PYTHON_TAGS = [
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/object/apply:os.system [echo hi]",
    "!!python/object/apply:os.system {args: [echo hi]}",
    "!!python/object/new:os.system [echo hi]",
    "!!python/object:collections.OrderedDict {}",
    "!!python/tuple [1, 2]",
    "!!python/str x",
    "!!python/unicode x",
    "!!python/bytes eA==",
    "!!python/complex 1+2j",
    "!<tag:yaml.org,2002:python/name:os.system> ''",
]


@pytest.mark.parametrize("tagged", PYTHON_TAGS)
def test_every_python_tag_is_refused_with_its_place(tagged: str) -> None:
    with pytest.raises(YamlProblem) as info:
        load_yaml(f"slug: x\nsteps:\n  - id: a\n    with: {tagged}\n")
    assert "python/" in info.value.message and "is not allowed" in info.value.message
    assert (info.value.line, info.value.column) == (4, 11)


def test_a_tag_directive_cannot_smuggle_a_python_tag() -> None:
    text = "%TAG !p! tag:yaml.org,2002:python/\n---\na: !p!object/apply:os.system [ls]\n"
    with pytest.raises(YamlProblem, match=r"python/object/apply:os\.system") as info:
        load_yaml(text)
    assert info.value.line == 3


@pytest.mark.parametrize(
    "tagged",
    [
        "!foo x",
        "!foo {a: 1}",
        "!foo [1]",
        "!!binary aGVsbG8=",
        "!!set {a, b}",
        "!!omap [a: 1]",
        "!!pairs [a: 1]",
        "!!timestamp 2024-01-01",
        "!!merge x",
        "!!value x",
        "!<tag:example.com,2000:app/foo> x",
        "!!str {a: 1}",
        "!!map x",
        "!!seq {a: 1}",
    ],
)
def test_tags_outside_the_core_schema_are_refused(tagged: str) -> None:
    with pytest.raises(YamlProblem) as info:
        load_yaml(f"a: {tagged}\n")
    assert "is not allowed" in info.value.message
    assert (info.value.line, info.value.column) == (1, 4)


def test_core_tags_and_the_non_specific_tag_are_allowed() -> None:
    text = "a: !!str 1\nb: !!int '2'\nc: !!float 3\nd: !!bool true\ne: !!null ''\n"
    text += "f: !!seq [1]\ng: !!map {x: 1}\nh: ! 12\n"
    data, _, _ = load_yaml(text)
    assert data == {
        "a": "1",
        "b": 2,
        "c": 3.0,
        "d": True,
        "e": None,
        "f": [1],
        "g": {"x": 1},
        "h": "12",
    }


def test_implicit_oddities_stay_strings_or_dates() -> None:
    data, _, _ = load_yaml("a: =\nb: 2024-01-31\n")
    assert data["a"] == "="
    assert str(data["b"]) == "2024-01-31"


@pytest.mark.parametrize(
    "number", ["1" * 5000, "1" + ":59" * 30_000, "0x" + "f" * 200, "1." + "5" * 200]
)
def test_huge_numbers_are_refused_not_computed(number: str) -> None:
    with pytest.raises(YamlProblem, match="a number longer than 100 characters") as info:
        load_yaml(f"a: {number}\n")
    assert info.value.line == 1


def test_bad_values_of_core_tags_are_problems_with_a_place() -> None:
    with pytest.raises(YamlProblem) as info:
        load_yaml("a: 1\nb: !!int nope\n")
    assert info.value.line == 2
    with pytest.raises(YamlProblem) as info:
        load_yaml("a: {<<: 1}\n")
    assert info.value.line == 1


def test_huge_texts_are_refused_before_parsing() -> None:
    with pytest.raises(YamlProblem, match="over the 1048576-byte limit"):
        load_yaml("a: " + "x" * (1024 * 1024))
    with pytest.raises(YamlProblem, match="over the 1048576-byte limit"):
        load_yaml("a: " + "é" * 600_000)  # 600,000 characters, 1.2 MB of UTF-8
    data, _, _ = load_yaml("a: " + "x" * 1_000_000)
    assert len(data["a"]) == 1_000_000


def test_read_text_does_not_read_past_the_limit(tmp_path: FilePath) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:  # 50 MB, sparse: nothing needs writing
        handle.truncate(50 * 1024 * 1024)
    with pytest.raises(YamlProblem, match="the file is over the 1048576-byte limit"):
        read_text(path)
    small = tmp_path / "small.yaml"
    small.write_text("a: 1\n", encoding="utf-8")
    assert read_text(small) == "a: 1\n"
