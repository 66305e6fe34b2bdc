"""What one render may cost: output size, iterations and calls, time; the checks that keep it.

A render gets one :class:`Budget`. The sandboxed environment in ``templates.py`` charges it
at every place a template can make work or data: each loop item, call, filter, ``*``, ``**``,
``+``, ``%`` and ``~``, and each piece of output. Operations that would build a value larger
than the limit are refused *before* they run (``'x' * 10**9`` never allocates), so memory
stays within a small multiple of ``max_chars``; the deadline is checked at each of those
places, so a template that loops or recurses stops on time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2.utils import Namespace


@dataclass(frozen=True)
class TemplateLimits:
    """Limits of one render (one ``with``, ``when``, ``outputs``, checkpoint or trigger value).

    ``max_chars`` is above an agent's default output limit (1,000,000 bytes), so a whole
    earlier output still passes through a template.
    """

    max_chars: int = 2_000_000
    max_total_chars: int = 20_000_000
    max_iterations: int = 100_000
    max_seconds: float = 10.0
    max_int_bits: int = 65_536


DEFAULT_TEMPLATE_LIMITS = TemplateLimits()


class LimitExceeded(Exception):
    """A render went over one of its limits (turned into a TemplateError by ``render``)."""


class Budget:
    """What one render has used so far, against its limits and deadline."""

    def __init__(self, limits: TemplateLimits, deadline: float | None = None) -> None:
        self.limits = limits
        own = time.monotonic() + limits.max_seconds
        self.deadline = own if deadline is None else min(deadline, own)
        self.seconds = max(self.deadline - time.monotonic(), 0.0)
        self.iterations = 0
        self.total_chars = 0

    def tick(self, count: int = 1) -> None:
        """One more loop item, call or operation; checks the iteration budget and the clock."""
        self.iterations += count
        if self.iterations > self.limits.max_iterations:
            raise LimitExceeded(
                f"template exceeded {self.limits.max_iterations} iterations "
                "(loop items, calls and operations)"
            )
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"template exceeded its time limit of {self.seconds:.3g} s")

    def allow(self, chars: int, what: str) -> None:
        """Refuse a value of ``chars`` characters before it is built."""
        if chars > self.limits.max_chars:
            raise LimitExceeded(f"template {what} would be over {self.limits.max_chars} characters")

    def produced(self, chars: int, what: str = "value") -> None:
        """Count a new value of ``chars`` characters against both size limits."""
        self.allow(chars, what)
        self.total_chars += chars
        if self.total_chars > self.limits.max_total_chars:
            raise LimitExceeded(
                f"template produced over {self.limits.max_total_chars} characters in all"
            )

    def counted(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """``iterable``, each item charged as one iteration."""
        for item in iterable:
            self.tick()
            yield item


_current: ContextVar[Budget | None] = ContextVar("baton_template_budget", default=None)


def current() -> Budget:
    """The budget of the render running in this thread."""
    budget = _current.get()
    if budget is None:  # the environment's hooks only run inside render()
        raise LimitExceeded("template evaluated outside a bounded render")
    return budget


def activate(budget: Budget) -> Any:
    """Make ``budget`` the current one; returns the token for :func:`deactivate`."""
    return _current.set(budget)


def deactivate(token: Any) -> None:
    _current.reset(token)


# --- size of a value, as text ------------------------------------------------------------------


def size_of(value: Any, budget: Budget, limit: int | None = None) -> int:
    """About how many characters ``value`` takes as text (JSON or ``str``), stopping early
    once over ``limit`` (default: the budget's ``max_chars``). Shared references count each
    time they appear, as they would once serialized."""
    limit = budget.limits.max_chars if limit is None else limit
    total = 0
    steps = 0
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)  # exact types first: this loop is the hot path of the checks
        if kind is str:
            total += len(item) + 2
        elif kind is int:
            total += item.bit_length() * 3 // 10 + 2
        elif kind is list or kind is tuple:
            total += 2 + len(item)
            stack.extend(item)
        else:
            total += _other_size(item, stack)
        if total > limit:
            return total
        steps += 1
        if steps & 4095 == 0:
            budget.check_time()
    return total


def _other_size(item: Any, stack: list[Any]) -> int:
    """The characters of ``item`` itself; its children are pushed on ``stack``."""
    if isinstance(item, str | bytes):
        return len(item) + 2
    if isinstance(item, bool) or item is None:
        return 5
    if isinstance(item, int):
        return item.bit_length() * 3 // 10 + 2
    if isinstance(item, float):
        return 24
    if isinstance(item, dict):
        stack.extend(item.keys())
        stack.extend(item.values())
        return 2 + 2 * len(item)
    if isinstance(item, list | tuple | set | frozenset):
        stack.extend(item)
        return 2 + len(item)
    if isinstance(item, Namespace):
        stack.append(dict(item._Namespace__attrs))  # type: ignore[attr-defined]
        return 12
    return 32  # ranges, macros, loop contexts: short texts


# --- operators ---------------------------------------------------------------------------------

_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")
_BRACE_NUMBER = re.compile(r"\d+")


def check_binop(operator: str, left: Any, right: Any, budget: Budget) -> None:
    """Refuse ``left <operator> right`` when its result would be over a limit."""
    budget.tick()
    if operator == "*":
        _check_repeat(left, right, budget)
    elif operator == "**":
        _check_power(left, right, budget)
    elif operator == "+" and not _is_number(left):
        budget.allow(text_size(left, budget) + text_size(right, budget), "concatenation")
    elif operator == "%" and isinstance(left, str | bytes):
        check_percent_format(left, right, budget)


def text_size(value: Any, budget: Budget) -> int:
    """The characters of a string itself, or of any other value as text."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple | dict) and 2 * len(value) > budget.limits.max_chars:
        return 2 * len(value)  # an item and its separator: at least 2 characters each
    return size_of(value, budget)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | complex)


def _check_repeat(left: Any, right: Any, budget: Budget) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > budget.limits.max_int_bits:
            raise LimitExceeded(f"template number over {budget.limits.max_int_bits} bits")
        return
    count, seq = (left, right) if isinstance(left, int) else (right, left)
    if isinstance(count, int) and not _is_number(seq):
        if count > budget.limits.max_chars:
            raise LimitExceeded(f"template repetition over {budget.limits.max_chars} times")
        if isinstance(seq, str):
            budget.allow(len(seq) * max(count, 0), "repetition")
            return
        if isinstance(seq, list | tuple):
            budget.allow(len(seq) * max(count, 0), "repetition")
        per_item = size_of(seq, budget, budget.limits.max_chars // max(count, 1) + 1)
        budget.allow(per_item * max(count, 0), "repetition")


def _check_power(left: Any, right: Any, budget: Budget) -> None:
    growing = isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1
    if growing and left.bit_length() * right > budget.limits.max_int_bits:
        raise LimitExceeded(f"template number over {budget.limits.max_int_bits} bits")


def check_percent_format(fmt: str | bytes, args: Any, budget: Budget) -> None:
    """``fmt % args``: no ``*`` widths, widths within the limit, a result within it."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt  # one character a byte
    conversions = _PERCENT.findall(text)
    for width, precision, _ in conversions:
        for number in (width, precision):
            if number == "*":
                raise LimitExceeded("template format with a '*' width is not allowed")
            if number and int(number) > budget.limits.max_chars:
                raise LimitExceeded(f"template format width over {budget.limits.max_chars}")
    budget.allow(len(fmt) + len(conversions) * size_of(args, budget), "format result")


def check_brace_format(fmt: str, args: Any, budget: Budget) -> None:
    """``fmt.format(...)``: numbers in format specs and arguments within the limit."""
    for number in _BRACE_NUMBER.findall(fmt):
        if int(number) > budget.limits.max_chars:
            raise LimitExceeded(f"template format width over {budget.limits.max_chars}")
    check_int_args(args, budget)
    budget.allow(len(fmt) + fmt.count("{") * size_of(args, budget), "format result")


def check_int_args(args: Iterable[Any], budget: Budget, bound: int | None = None) -> None:
    """Widths and counts given to string methods and filters stay within the limit."""
    bound = budget.limits.max_chars if bound is None else bound
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and arg > bound:
            raise LimitExceeded(f"template argument {arg} is over the limit of {bound}")


def check_concat(parts: Iterable[Any], budget: Budget) -> list[str]:
    """The parts of ``a ~ b ~ c`` as strings, refused before joining when over the limit."""
    texts: list[str] = []
    total = 0
    for part in parts:
        total += text_size(part, budget)
        budget.allow(total, "concatenation")
        texts.append(str(part))
    budget.produced(sum(len(t) for t in texts), "concatenation")
    return texts


# --- string methods and filters whose result can outgrow their input ---------------------------


def _replace_size(text: str | bytes, old: Any, new: Any, count: Any) -> int:
    if type(old) is not type(text) or type(new) is not type(text):
        return len(text)  # the call fails on mixed types
    found = len(text) + 1 if not old else text.count(old)  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def _join_size(sep: Any, items: list[Any], budget: Budget) -> int:
    total = len(sep) * max(len(items) - 1, 0) if isinstance(sep, str | bytes) else 0
    for item in items:
        total += size_of(item, budget)
        if total > budget.limits.max_chars:
            break
    return total


def _translate_size(text: str, table: Any) -> int:
    longest = 1
    if isinstance(table, dict):
        longest = max([len(v) for v in table.values() if isinstance(v, str)] or [1])
    return len(text) * longest


def _expandtabs_size(text: str | bytes, size: Any) -> int:
    tab = size if isinstance(size, int) and size > 0 else 8
    tabs = text.count(b"\t") if isinstance(text, bytes) else text.count("\t")
    return len(text) + tabs * tab


def check_str_method(
    text: str | bytes, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], budget: Budget
) -> tuple[Any, ...]:
    """Refuse a call of ``text.<name>`` (a str or bytes method) whose result would be over the
    limit; the arguments to call it with (an iterable given to ``join`` is read once, here)."""
    check_int_args([*args, *kwargs.values()], budget)
    if name == "join" and args:
        items = list(budget.counted(args[0]))
        budget.allow(_join_size(text, items, budget), "join")
        return (items, *args[1:])
    estimate = len(text)
    if name == "replace" and len(args) >= 2:
        estimate = _replace_size(text, args[0], args[1], args[2] if len(args) > 2 else -1)
    elif name == "translate" and args and isinstance(text, str):  # bytes map byte to byte
        estimate = _translate_size(text, args[0])
    elif name == "expandtabs":
        estimate = _expandtabs_size(text, args[0] if args else kwargs.get("tabsize", 8))
    budget.allow(estimate, f"{type(text).__name__}.{name}")
    return args


# Filters that turn a whole structure into text: their input must fit the limit first.
_SERIALIZING = frozenset({"tojson", "pprint", "string", "list", "xmlattr", "urlencode", "join"})
# Counts that create one object each: bounded like iterations, not characters.
_COUNTS = frozenset({"batch", "slice"})


def check_filter(
    name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], budget: Budget
) -> None:
    """Refuse a filter call whose result would be over the limit, before it runs."""
    budget.tick()
    bound = budget.limits.max_iterations if name in _COUNTS else None
    check_int_args([*args, *kwargs.values()], budget, bound)
    if name in _SERIALIZING:
        budget.allow(size_of(value, budget), f"'{name}' input")
    if name == "join" and isinstance(value, list):
        sep = args[0] if args else kwargs.get("d", "")
        budget.allow(_join_size(sep, value, budget), "'join' result")
    if not isinstance(value, str):
        if name == "sum" and not _is_number(kwargs.get("start", args[1] if len(args) > 1 else 0)):
            raise LimitExceeded("template 'sum' adds numbers only")
        return
    estimate = len(value)
    if name == "replace" and len(args) >= 2:
        estimate = _replace_size(value, args[0], args[1], args[2] if len(args) > 2 else None)
    elif name == "indent":
        width = args[0] if args else kwargs.get("width", 4)
        prefix = width if isinstance(width, int) else len(str(width))
        estimate = len(value) + (value.count("\n") + 1) * prefix
    elif name == "wordwrap":
        _check_wordwrap(value, args, kwargs, budget)
    elif name == "center":
        width = args[0] if args else kwargs.get("width", 80)
        estimate = max(len(value), width if isinstance(width, int) else 0)
    elif name == "format":
        check_percent_format(value, args or kwargs, budget)
    budget.allow(estimate, f"'{name}' result")


def _check_wordwrap(
    text: str, args: tuple[Any, ...], kwargs: dict[str, Any], budget: Budget
) -> None:
    # textwrap re-slices a word longer than the width at every break: quadratic in its length.
    width = args[0] if args else kwargs.get("width", 79)
    width = width if isinstance(width, int) and width > 0 else 1
    wrap = args[2] if len(args) > 2 else kwargs.get("wrapstring") or "\n"
    lines = len(text) // width + text.count("\n") + 1
    budget.allow(len(text) + lines * len(str(wrap)), "'wordwrap' result")
    work = sum(len(word) ** 2 // width for word in text.split() if len(word) > width)
    if work > budget.limits.max_total_chars:
        raise LimitExceeded("template 'wordwrap' of such long words is too much work")


def check_built(value: Any, budget: Budget, what: str) -> Any:
    """A new collection (``dict(...)``, ``namespace(...)``) fits the limit as text."""
    budget.allow(size_of(value, budget), what)
    return value


def check_result(value: Any, budget: Budget, what: str) -> Any:
    """Count a value a call or filter made; iterators are charged item by item."""
    if isinstance(value, str | bytes):
        budget.produced(len(value), what)
    elif isinstance(value, Iterator):
        return budget.counted(value)
    return value
