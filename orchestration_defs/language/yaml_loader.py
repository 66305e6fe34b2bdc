"""YAML loading that is bounded and remembers where every key and item came from.

Everything Baton parses (definitions, the agent catalog, the API's validate route, `baton
validate`, library sync) goes through :func:`load_yaml`. It composes the node tree itself, on
libyaml's event stream when available, so that every limit is enforced while composing, before
any Python data is built:

- the text's size in bytes;
- nesting depth, counted after alias expansion (an alias to a deep value nests it again);
- total nodes and scalar characters after alias expansion: an alias counts its whole value each
  time it is used, so a billion-laughs document is refused after reading a few hundred bytes;
- the number of aliases;
- tags: only the YAML core schema's (``!!str``, ``!!int``, ``!!float``, ``!!bool``, ``!!null``,
  ``!!seq``, ``!!map``); ``!!python/*``, ``!!binary``, ``!custom`` and the rest are refused.

We build plain Python data from the tree and a map from each path (tuple of keys and indexes)
to its 1-based line and column, so pydantic's error locations can be turned into
``file:line:column``. Every refusal is a :class:`YamlProblem` with a line and column when the
place is known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# YAML keys may be any scalar, so a path element is anything hashable.
Path = tuple[Any, ...]

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null"))
_EXPLICIT_TAGS = {
    ScalarNode: _SCALAR_TAGS,
    SequenceNode: {_CORE + "seq"},
    MappingNode: {_CORE + "map"},
}
# What the resolver may give a plain scalar besides the core tags: ``<<`` and dates.
_IMPLICIT_EXTRA = frozenset({_CORE + "merge", _CORE + "timestamp"})
_NUMBER_TAGS = frozenset({_CORE + "int", _CORE + "float"})
# Longer numbers are refused: sexagesimal ints (1:2:3...) cost quadratic time to build.
MAX_NUMBER_CHARS = 100


@dataclass(frozen=True)
class YamlLimits:
    """How much one YAML text may hold. The defaults admit every shipped definition and catalog
    entry with a wide margin (the largest shipped file: 4 KB, 130 nodes, 7 levels deep)."""

    max_bytes: int = 1024 * 1024
    max_depth: int = 64
    max_nodes: int = 100_000
    max_scalar_chars: int = 4 * 1024 * 1024
    max_aliases: int = 1_000


DEFAULT_LIMITS = YamlLimits()


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
    """Broken or refused YAML, with the place the parser gave up."""

    def __init__(self, message: str, line: int | None, column: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def _problem(message: str, mark: Any) -> YamlProblem:
    if mark is None:
        return YamlProblem(f"invalid YAML: {message}", None, None)
    return YamlProblem(f"invalid YAML: {message}", mark.line + 1, mark.column + 1)


@dataclass(frozen=True)
class _Size:
    """What a node costs once expanded: nodes, scalar characters, levels below it."""

    nodes: int
    chars: int
    height: int


class _Composer:
    """PyYAML's Composer, rewritten to count the expanded document while it composes.

    It reads the event stream of a parser (libyaml's or PyYAML's own); the parser's own
    composer, which counts nothing, never runs.
    """

    def __init__(self, events: Any, limits: YamlLimits) -> None:
        self.events = events
        self.resolver = yaml.resolver.Resolver()
        self.limits = limits
        self.anchors: dict[str, Node] = {}
        self.sizes: dict[int, _Size] = {}  # of anchored nodes, by id, once they are complete
        self.nodes = 0
        self.chars = 0
        self.aliases = 0

    def single_node(self) -> Node | None:
        self.events.get_event()  # stream start
        node = None
        if not self.events.check_event(StreamEndEvent):
            self.events.get_event()  # document start
            node, _ = self._compose(0)
            self.events.get_event()  # document end
        if not self.events.check_event(StreamEndEvent):
            event = self.events.get_event()
            raise _problem("expected a single document in the stream", event.start_mark)
        return node

    def _charge(self, nodes: int, chars: int, mark: Any) -> None:
        self.nodes += nodes
        self.chars += chars
        if self.nodes > self.limits.max_nodes:
            raise _problem(
                f"the document holds more than {self.limits.max_nodes} nodes "
                "(an alias counts its whole value each time it is used)",
                mark,
            )
        if self.chars > self.limits.max_scalar_chars:
            raise _problem(
                f"the document's values hold more than {self.limits.max_scalar_chars} "
                "characters (an alias counts its whole value each time it is used)",
                mark,
            )

    def _compose(self, depth: int) -> tuple[Node, int]:
        """The next node and its height (levels of collections below it, expanded)."""
        if self.events.check_event(AliasEvent):
            return self._alias(depth)
        event = self.events.peek_event()
        anchor = event.anchor
        if anchor is not None and anchor in self.anchors:
            raise _problem(f"found duplicate anchor '{anchor}'", event.start_mark)
        before = (self.nodes, self.chars)
        node: Node
        if self.events.check_event(ScalarEvent):
            node, height = self._scalar(), 0
        else:
            if depth >= self.limits.max_depth:
                raise _problem(
                    f"nesting deeper than {self.limits.max_depth} levels", event.start_mark
                )
            if self.events.check_event(SequenceStartEvent):
                node, height = self._sequence(depth)
            else:
                node, height = self._mapping(depth)
        if anchor is not None:
            self.sizes[id(node)] = _Size(self.nodes - before[0], self.chars - before[1], height)
        return node, height

    def _alias(self, depth: int) -> tuple[Node, int]:
        event = self.events.get_event()
        node = self.anchors.get(event.anchor)
        if node is None:
            raise _problem(f"found undefined alias '{event.anchor}'", event.start_mark)
        size = self.sizes.get(id(node))
        if size is None:  # its anchor's collection is still open: the alias is inside it
            raise _problem("recursive alias", event.start_mark)
        self.aliases += 1
        if self.aliases > self.limits.max_aliases:
            raise _problem(f"more than {self.limits.max_aliases} aliases", event.start_mark)
        if depth + size.height > self.limits.max_depth:
            raise _problem(
                f"nesting deeper than {self.limits.max_depth} levels once aliases are expanded",
                event.start_mark,
            )
        self._charge(size.nodes, size.chars, event.start_mark)
        return node, size.height

    def _tag(self, kind: type[Node], event: Any, value: Any, implicit: Any) -> str:
        explicit = event.tag
        if explicit == "!" and kind is ScalarNode:
            return _CORE + "str"  # the non-specific tag: a string, whatever it looks like
        if explicit is not None and explicit != "!":
            if explicit not in _EXPLICIT_TAGS[kind]:
                raise _problem(
                    f"tag '{explicit}' is not allowed (only the YAML core schema's: "
                    "!!str, !!int, !!float, !!bool, !!null, !!seq, !!map)",
                    event.start_mark,
                )
            return str(explicit)
        tag = str(self.resolver.resolve(kind, value, implicit))
        if kind is ScalarNode and tag not in _SCALAR_TAGS | _IMPLICIT_EXTRA:
            return _CORE + "str"  # "=" resolves to the unsupported !!value: keep it a string
        return tag

    def _scalar(self) -> ScalarNode:
        event = self.events.get_event()
        tag = self._tag(ScalarNode, event, event.value, event.implicit)
        if tag in _NUMBER_TAGS and len(event.value) > MAX_NUMBER_CHARS:
            raise _problem(f"a number longer than {MAX_NUMBER_CHARS} characters", event.start_mark)
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
        if event.anchor is not None:
            self.anchors[event.anchor] = node
        self._charge(1, len(event.value), event.start_mark)
        return node

    def _sequence(self, depth: int) -> tuple[SequenceNode, int]:
        start = self.events.get_event()
        tag = self._tag(SequenceNode, start, None, start.implicit)
        node = SequenceNode(tag, [], start.start_mark, None, flow_style=start.flow_style)
        if start.anchor is not None:
            self.anchors[start.anchor] = node
        self._charge(1, 0, start.start_mark)
        height = 0
        while not self.events.check_event(SequenceEndEvent):
            item, item_height = self._compose(depth + 1)
            node.value.append(item)
            height = max(height, item_height)
        node.end_mark = self.events.get_event().end_mark
        return node, height + 1

    def _mapping(self, depth: int) -> tuple[MappingNode, int]:
        start = self.events.get_event()
        tag = self._tag(MappingNode, start, None, start.implicit)
        node = MappingNode(tag, [], start.start_mark, None, flow_style=start.flow_style)
        if start.anchor is not None:
            self.anchors[start.anchor] = node
        self._charge(1, 0, start.start_mark)
        height = 0
        while not self.events.check_event(MappingEndEvent):
            key, key_height = self._compose(depth + 1)
            value, value_height = self._compose(depth + 1)
            node.value.append((key, value))
            height = max(height, key_height, value_height)
        node.end_mark = self.events.get_event().end_mark
        return node, height + 1


class _PyEvents(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    """PyYAML's pure-Python reader, scanner and parser, for when libyaml is not installed."""

    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


def _c_events() -> type | None:
    if not yaml.__with_libyaml__:
        return None
    from yaml import _yaml  # type: ignore[attr-defined]

    return _yaml.CParser  # type: ignore[no-any-return]


# libyaml scans and parses in C, several times faster than PyYAML's own parser.
_Events: type = _c_events() or _PyEvents


def _check_size(text: str, limits: YamlLimits) -> None:
    # A character is at least one byte, so most texts need no encoding to be measured.
    size = len(text) if len(text) > limits.max_bytes else len(text.encode("utf-8", "replace"))
    if size > limits.max_bytes:
        raise YamlProblem(
            f"invalid YAML: the text is over the {limits.max_bytes}-byte limit", None, None
        )


def compose(text: str, limits: YamlLimits = DEFAULT_LIMITS) -> Node | None:
    """The node tree of one YAML document, every limit enforced while composing.

    Raises:
        YamlProblem: the text is not valid YAML, holds more than one document, or breaks a
            limit or the tag rule.
    """
    _check_size(text, limits)
    events = _Events(text)
    try:
        return _Composer(events, limits).single_node()
    except yaml.MarkedYAMLError as exc:
        raise _problem(str(exc.problem or exc), exc.problem_mark or exc.context_mark) from exc
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {exc}", None, None) from exc
    finally:
        dispose = getattr(events, "dispose", None)
        if dispose is not None:
            dispose()


def load_yaml(
    text: str, limits: YamlLimits = DEFAULT_LIMITS
) -> tuple[Any, Positions, list[YamlProblem]]:
    """Parse one YAML document into data, positions and non-fatal problems (duplicate keys).

    Raises:
        YamlProblem: the text is not valid YAML, holds more than one document, or breaks a
            limit or the tag rule.
    """
    node = compose(text, limits)
    positions = Positions()
    problems: list[YamlProblem] = []
    if node is None:
        return None, positions, problems
    data = _Builder(positions, problems).build(node, ())
    return data, positions, problems


def read_text(path: FilePath, limits: YamlLimits = DEFAULT_LIMITS) -> str:
    """A file's text, read no further than the size limit (a 50 MB file is not read at all).

    Raises:
        OSError: the file cannot be read.
        UnicodeDecodeError: it is not UTF-8.
        YamlProblem: it is over the size limit.
    """
    with path.open("rb") as handle:
        data = handle.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise YamlProblem(
            f"invalid YAML: the file is over the {limits.max_bytes}-byte limit", None, None
        )
    return data.decode("utf-8")


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    """Plain data from a composed (already bounded) node tree, with positions and problems."""

    def __init__(self, positions: Positions, problems: list[YamlProblem]) -> None:
        self.positions = positions
        self.problems = problems
        self.constructor = yaml.SafeLoader("")

    def build(self, node: Node, path: Path) -> Any:
        self.positions.marks.setdefault(path, _mark(node))
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: Node) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except Exception as exc:  # a core constructor failing on its value (!!int '' too)
            line, column = _mark(node)
            raise YamlProblem(f"invalid YAML: {_first_line(exc)}", line, column) from exc

    def _mapping(self, node: MappingNode, path: Path) -> dict[Any, Any]:
        try:
            self.constructor.flatten_mapping(node)  # resolves YAML merge keys (<<)
        except yaml.YAMLError as exc:
            line, column = _mark(node)
            raise YamlProblem(f"invalid YAML: {_first_line(exc)}", line, column) from exc
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self._scalar(key_node) if isinstance(key_node, ScalarNode) else ()
            if key is not None and not isinstance(key, str | int | float | bool):
                self.problems.append(YamlProblem("mapping keys must be scalars", *_mark(key_node)))
                continue
            if key in result:
                line, column = _mark(key_node)
                self.problems.append(YamlProblem(f"duplicate key '{key}'", line, column))
            child = (*path, key)
            self.positions.marks[child] = _mark(key_node)
            result[key] = self.build(value_node, child)
        return result


def _first_line(exc: BaseException) -> str:
    problem = getattr(exc, "problem", None)
    return str(problem or exc).splitlines()[0]
