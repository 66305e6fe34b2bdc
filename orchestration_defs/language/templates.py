"""Templates in ``with``, ``when`` and ``outputs``: sandboxed Jinja2 with strict undefined.

A string that is exactly one ``{{ expression }}`` keeps the expression's native type, so a
list stays a list and a dict stays a dict; any other string renders to a string. The names a
template may use are ``inputs``, ``steps`` and ``run``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT_NAMES = frozenset({"inputs", "steps", "run"})
_WHOLE = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)
_FALSE_STRINGS = frozenset({"", "false", "no", "off", "0", "none", "null"})


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with one change: a dict's keys win over its methods.

    Plain Jinja resolves ``inputs.items`` to ``dict.items``; in orchestration data a key named
    ``items``, ``keys`` or ``values`` is far more likely to be meant.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


_env = _Environment(undefined=StrictUndefined, autoescape=False)


class TemplateError(Exception):
    """A template that cannot be parsed or rendered."""


@dataclass(frozen=True)
class References:
    """What a template refers to: step ids, input names and unknown root names."""

    steps: frozenset[str]
    inputs: frozenset[str]
    unknown_roots: frozenset[str]


def is_template(value: str) -> bool:
    """Whether a string contains template syntax at all."""
    return "{{" in value or "{%" in value


def _whole_expression(value: str) -> str | None:
    match = _WHOLE.match(value)
    if match is None:
        return None
    expr = match.group("expr")
    if "{{" in expr or "}}" in expr or "{%" in value:
        return None
    # Whitespace control ({{- x -}}, {{+ x }}) is Jinja syntax, not part of the expression.
    if expr.startswith(("-", "+")):
        expr = expr[1:]
    if expr.endswith("-"):
        expr = expr[:-1]
    return expr


def _parse(value: str) -> nodes.Template:
    try:
        return _env.parse(value)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from exc


def references(value: str) -> References:
    """The names a template string uses.

    Raises:
        TemplateError: the template does not parse.
    """
    tree = _parse(value)
    steps: set[str] = set()
    inputs: set[str] = set()
    for node in _attribute_nodes(tree):
        target, name = node
        if target == "steps":
            steps.add(name)
        elif target == "inputs":
            inputs.add(name)
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    if any(True for _ in tree.find_all(nodes.For)):
        assigned.add("loop")  # the loop variable Jinja defines inside every for loop
    roots = {n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"} - assigned
    return References(frozenset(steps), frozenset(inputs), frozenset(roots - ROOT_NAMES))


def _attribute_nodes(tree: nodes.Node) -> Iterator[tuple[str, str]]:
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            base, name = node.node, node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            base, name = node.node, node.arg.value
        else:
            continue
        if (
            isinstance(base, nodes.Name)
            and base.name in ("steps", "inputs")
            and isinstance(name, str)
        ):
            yield base.name, name


def walk_strings(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple, str]]:
    """Every string inside a nested value, with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk_strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk_strings(item, (*path, index))


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every template inside ``value`` (dicts and lists are walked).

    Raises:
        TemplateError: a name is undefined, or the template is unsafe or broken.
    """
    if isinstance(value, str):
        return _render_string(value, context)
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    return value


def _render_string(value: str, context: dict[str, Any]) -> Any:
    if not is_template(value):
        return value
    try:
        expr = _whole_expression(value)
        if expr is not None:
            result = _env.compile_expression(expr, undefined_to_none=False)(**context)
            if isinstance(result, Undefined):
                result._fail_with_undefined_error()
            return result
        return _env.from_string(value).render(**context)
    except (UndefinedError, SecurityError, TemplateSyntaxError) as exc:
        raise TemplateError(f"{exc} in template {value!r}") from exc
    except TemplateError:
        raise
    except Exception as exc:  # a filter or operator failing on the data it was given
        raise TemplateError(f"{type(exc).__name__}: {exc} in template {value!r}") from exc


def truthy(value: Any) -> bool:
    """Whether a rendered ``when`` lets its step run ("false", "no", "0" and "" do not)."""
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_STRINGS
    return bool(value)
