"""YAML loading that remembers where every key and item came from.

PyYAML's composed node tree carries line and column marks; we build plain Python data from it
and a map from each path (tuple of keys and indexes) to its 1-based line and column, so
pydantic's error locations can be turned into ``file:line:column``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

# YAML keys may be any scalar, so a path element is anything hashable.
Path = tuple[Any, ...]


@dataclass
class Positions:
    """Line and column of each path in a document."""

    marks: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def find(self, path: Path) -> tuple[int | None, int | None]:
        """The position of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            mark = self.marks.get(tuple(path[:end]))
            if mark is not None:
                return mark
        return None, None


class YamlProblem(Exception):
    """Broken YAML, with the place the parser gave up."""

    def __init__(self, message: str, line: int | None, column: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def load_yaml(text: str) -> tuple[Any, Positions, list[YamlProblem]]:
    """Parse one YAML document into data, positions and non-fatal problems (duplicate keys).

    Raises:
        YamlProblem: the text is not valid YAML or holds more than one document.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise YamlProblem(f"invalid YAML: {exc.problem or exc}", line, column) from exc
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {exc}", None, None) from exc
    positions = Positions()
    problems: list[YamlProblem] = []
    if node is None:
        return None, positions, problems
    constructor = yaml.SafeLoader("")
    data = _build(node, (), positions, problems, constructor)
    return data, positions, problems


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _build(
    node: yaml.Node,
    path: Path,
    positions: Positions,
    problems: list[YamlProblem],
    constructor: yaml.SafeLoader,
    active: frozenset[int] = frozenset(),
) -> Any:
    positions.marks.setdefault(path, _mark(node))
    if isinstance(node, yaml.CollectionNode):
        if id(node) in active:  # an alias to a collection it is inside of
            raise YamlProblem("invalid YAML: recursive alias", *_mark(node))
        active = active | {id(node)}
    if isinstance(node, yaml.MappingNode):
        constructor.flatten_mapping(node)  # resolves YAML merge keys (<<)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                line, column = _mark(key_node)
                problems.append(YamlProblem("mapping keys must be scalars", line, column))
                continue
            if key in result:
                line, column = _mark(key_node)
                problems.append(YamlProblem(f"duplicate key '{key}'", line, column))
            child = (*path, key)
            positions.marks[child] = _mark(key_node)
            result[key] = _build(value_node, child, positions, problems, constructor, active)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(item, (*path, index), positions, problems, constructor, active)
            for index, item in enumerate(node.value)
        ]
    return constructor.construct_object(node, deep=True)
