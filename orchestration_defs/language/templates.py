"""Templates in ``with``, ``when`` and ``outputs``: sandboxed Jinja2 with strict undefined.

A string that is exactly one ``{{ expression }}`` keeps the expression's native type, so a
list stays a list and a dict stays a dict; any other string renders to a string. The names a
template may use are ``inputs``, ``steps`` and ``run``.

Rendering is bounded (``template_limits.py``): every loop item, call, filter, growing
operator and piece of output is charged to the render's budget and checked against its
deadline, and values that would outgrow the size limit are refused before they are built.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, _PassArg

from orchestration_defs.language import template_limits as limits_
from orchestration_defs.language.template_limits import (
    DEFAULT_TEMPLATE_LIMITS,
    Budget,
    LimitExceeded,
    TemplateLimits,
)

ROOT_NAMES = frozenset({"inputs", "steps", "run"})
_WHOLE = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)
_FALSE_STRINGS = frozenset({"", "false", "no", "off", "0", "none", "null"})


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, bounded, with one change: a dict's keys win over its methods.

    Plain Jinja resolves ``inputs.items`` to ``dict.items``; in orchestration data a key named
    ``items``, ``keys`` or ``values`` is far more likely to be meant.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_finalize, **options)
        self.globals.pop("lipsum", None)  # lipsum(10**9) would write forever
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = limits_.current()
        limits_.check_binop(operator, left, right, budget)
        return limits_.check_result(
            super().call_binop(context, operator, left, right), budget, f"'{operator}' result"
        )

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = limits_.current()
        budget.tick()
        if __obj is _loop or __obj is _join:  # the budget's own helpers charge themselves
            return __obj(*args)
        if isinstance(__obj, LoopContext) and args:  # the next level of a recursive loop
            args = (budget.counted(args[0]), *args[1:])
        # str.format comes wrapped by the sandbox; the method itself is its __wrapped__.
        method = getattr(__obj, "__wrapped__", __obj)
        owner = getattr(method, "__self__", None)
        # bytes (from str.encode) grow as str does: zfill, ljust, center, replace, join, ...
        if isinstance(owner, str | bytes):
            name = getattr(method, "__name__", "")
            if isinstance(owner, str) and name in ("format", "format_map"):
                limits_.check_brace_format(owner, [*args, *kwargs.values()], budget)
            else:
                args = limits_.check_str_method(owner, name, args, kwargs, budget)
        elif isinstance(owner, int):  # int.to_bytes(length) builds ``length`` bytes
            limits_.check_int_args([*args, *kwargs.values()], budget)
        result = super().call(__context, __obj, *args, **kwargs)
        if __obj is dict or __obj is Namespace:  # a copy each call: dict(d, **more) grows
            return limits_.check_built(result, budget, f"{__obj.__name__}(...) result")
        return limits_.check_result(result, budget, "call result")

    def concat(self, parts: Any) -> str:  # type: ignore[override]
        """Joins the output of a template, macro or block, charged piece by piece."""
        budget = limits_.current()
        pieces: list[str] = []
        size = 0
        for piece in parts:
            size += len(piece)
            budget.allow(size, "output")
            budget.check_time()
            pieces.append(piece)
        budget.produced(size, "output")
        return "".join(pieces)

    def _generate(self, source: nodes.Template, *args: Any, **kwargs: Any) -> str:
        return super()._generate(_bounded_tree(source), *args, **kwargs)


def _finalize(value: Any) -> Any:
    """Every ``{{ value }}`` written out: refused before ``str`` when it would be too long."""
    budget = limits_.current()
    if not isinstance(value, str):
        budget.allow(limits_.size_of(value, budget), "output")
    return value


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    skip = 0 if _PassArg.from_obj(func) is None else 1  # context, eval context or environment

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = limits_.current()
        value, rest = args[skip] if len(args) > skip else None, args[skip + 1 :]
        if name == "join" and value is not None and not isinstance(value, str):
            value = list(budget.counted(value))  # read once, to know the result's size
            args = (*args[:skip], value, *rest)
        limits_.check_filter(name, value, rest, kwargs, budget)
        return limits_.check_result(func(*args, **kwargs), budget, f"'{name}' result")

    return bounded


def _loop(iterable: Any) -> Iterator[Any]:
    """What every ``for`` iterates: its iterable, each item charged to the budget."""
    return limits_.current().counted(iterable)


def _join(*parts: Any) -> str:
    """What ``a ~ b`` becomes: the parts joined once their size is known to fit."""
    return "".join(limits_.check_concat(parts, limits_.current()))


def _bounded_tree(node: Any) -> Any:
    """Route every ``for`` iterable and every ``~`` through the budgeted helpers above."""
    for name, value in node.iter_fields():
        if isinstance(value, nodes.Node):
            setattr(node, name, _bounded_tree(value))
        elif isinstance(value, list):
            setattr(
                node, name, [_bounded_tree(v) if isinstance(v, nodes.Node) else v for v in value]
            )
    if isinstance(node, nodes.For):
        node.iter = _helper_call("baton_loop", [node.iter], node.lineno)
    if isinstance(node, nodes.Concat):
        return _helper_call("baton_join", node.nodes, node.lineno)
    return node


def _helper_call(name: str, args: list[Any], lineno: int) -> nodes.Call:
    # An environment attribute, not a global: a template cannot shadow or reach it by name.
    return nodes.Call(nodes.EnvironmentAttribute(name), args, [], None, None, lineno=lineno)


_env = _Environment(undefined=StrictUndefined, autoescape=False)
_env.baton_loop = _loop  # type: ignore[attr-defined]
_env.baton_join = _join  # type: ignore[attr-defined]


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


# Deeper than any real template; Jinja's parser is iterative for chains (`x|f|f|f...`,
# `a.b.b.b...`) but every walk of the tree (references, the compiler) recurses.
MAX_TREE_DEPTH = 200


def _parse(value: str) -> nodes.Template:
    try:
        tree = _env.parse(value)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from exc
    except RecursionError:
        raise TemplateError("template syntax error: nested too deeply") from None
    if _too_deep(tree):
        raise TemplateError(
            f"template syntax error: nested too deeply (over {MAX_TREE_DEPTH} levels of "
            "filters, attributes, calls or blocks)"
        )
    return tree


def _too_deep(tree: nodes.Node) -> bool:
    stack: list[tuple[nodes.Node, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return False


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


def uses_whole_steps(value: str) -> bool:
    """Whether a template uses ``steps`` other than as ``steps.ID`` or ``steps['ID']`` (a
    loop over it, a filter, an index by variable), so that it may read any step's result.

    Raises:
        TemplateError: the template does not parse.
    """
    tree = _parse(value)
    named = sum(1 for node in _attribute_nodes(tree) if node[0] == "steps")
    loads = sum(1 for n in tree.find_all(nodes.Name) if n.name == "steps" and n.ctx == "load")
    return loads > named


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


def render(
    value: Any,
    context: dict[str, Any],
    *,
    field: str = "",
    limits: TemplateLimits = DEFAULT_TEMPLATE_LIMITS,
    deadline: float | None = None,
) -> Any:
    """Render every template inside ``value`` (dicts and lists are walked), as one budget.

    ``field`` names ``value`` in errors (``with`` gives ``with.prompt: ...``); ``deadline``
    (a ``time.monotonic()`` value) ends rendering early, for a step whose timeout is near.

    Raises:
        TemplateError: a name is undefined, the template is unsafe or broken, or it went
            over a limit (size, iterations, time).
    """
    budget = Budget(limits, deadline)
    token = limits_.activate(budget)
    try:
        return _render_value(value, context, field, budget)
    finally:
        limits_.deactivate(token)


def _render_value(value: Any, context: dict[str, Any], where: str, budget: Budget) -> Any:
    if isinstance(value, str):
        try:
            return _render_string(value, context, budget)
        except TemplateError as exc:
            raise TemplateError(f"{where}: {exc}" if where else str(exc)) from exc
    if isinstance(value, dict):
        return {
            key: _render_value(item, context, f"{where}.{key}" if where else str(key), budget)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            _render_value(item, context, f"{where}[{index}]", budget)
            for index, item in enumerate(value)
        ]
    return value


def _render_string(value: str, context: dict[str, Any], budget: Budget) -> Any:
    if not is_template(value):
        return value
    try:
        result = _evaluate(value, context)
        budget.produced(limits_.text_size(result, budget), "result")
        return result
    except LimitExceeded as exc:
        raise TemplateError(f"{exc} in template {_shown(value)}") from None
    except (UndefinedError, SecurityError, TemplateSyntaxError) as exc:
        raise TemplateError(f"{exc} in template {_shown(value)}") from exc
    except TemplateError:
        raise
    except RecursionError:
        raise TemplateError(f"template nested too deeply: {_shown(value)}") from None
    except Exception as exc:  # a filter or operator failing on the data it was given
        message = f"{type(exc).__name__}: {exc}"[:500]
        raise TemplateError(f"{message} in template {_shown(value)}") from exc


# Compiled templates and expressions by their text: a step renders the same strings on every
# run, and compiling is most of a render's cost (about 1 ms each). Compiled objects hold no
# render state (the budget lives in a context variable), so sharing them is safe.
_COMPILED_CACHE_SIZE = 2048


@functools.lru_cache(maxsize=_COMPILED_CACHE_SIZE)
def _compiled_template(value: str) -> Any:
    return _env.from_string(value)


@functools.lru_cache(maxsize=_COMPILED_CACHE_SIZE)
def _compiled_expression(expr: str) -> Any:
    return _env.compile_expression(expr, undefined_to_none=False)


def _evaluate(value: str, context: dict[str, Any]) -> Any:
    expr = _whole_expression(value)
    if expr is None:
        return _compiled_template(value).render(**context)
    result = _compiled_expression(expr)(**context)
    if isinstance(result, Undefined):
        result._fail_with_undefined_error()
    return result


def _shown(value: str) -> str:
    """A template as quoted in an error: the whole of a short one, the start of a long one."""
    return repr(value) if len(value) <= 300 else repr(value[:300]) + "..."


def truthy(value: Any) -> bool:
    """Whether a rendered ``when`` lets its step run ("false", "no", "0" and "" do not)."""
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_STRINGS
    return bool(value)
