"""Untrusted values checked within bounds: text, JSON documents and the values inside them.

Everything a person or a sender gives Baton (launch inputs, decisions, webhook bodies, query
parameters, CLI arguments) passes through here before it is stored. Text must be valid
Unicode with no NUL and no lone surrogate: Python's ``json`` turns a ``"\\ud800"`` escape into
a lone surrogate, which no database stores and no UTF-8 response can carry, and Postgres
refuses NUL in text and ``\\u0000`` in JSONB. Numbers must be finite and integers fit in 64
bits (JSON has no infinity, and clients lose precision past that). Sizes are bounded so that
one request cannot fill the database or the worker's memory.

Problems name the offending place as a path (``inputs.topic[2].name``) and never repeat the
offending text itself, so an error message is always safe to log and to send back.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MIN_INT = -(2**63)
MAX_INT = 2**63 - 1
# A NUL or a lone surrogate (an unpaired code point in U+D800..U+DFFF).
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_SHOWN_KEY_CHARS = 64
_SHOWN_FIELD_CHARS = 300
REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
SHOWN_DEPTH = 100
TOO_DEEP = "(nested too deeply to show)"


class ValueProblem(ValueError):
    """A value refused at the edge: ``field`` is where, ``message`` what was expected."""

    def __init__(self, field: str, message: str) -> None:
        if len(field) > _SHOWN_FIELD_CHARS:  # a path 64 levels deep: its two ends say enough
            half = _SHOWN_FIELD_CHARS // 2
            field = f"{field[:half]}...{field[-half:]}"
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class JsonSyntaxError(ValueProblem):
    """The text is not JSON at all (as opposed to JSON holding a refused value)."""


@dataclass(frozen=True)
class ValueLimits:
    """Bounds on one value; ``None`` leaves that dimension unbounded.

    Attributes:
        max_string_chars: characters in one string (object keys included).
        max_items: items of one list, or keys of one object.
        max_depth: nesting of lists and objects (a scalar is depth 0).
        max_total_bytes: the value serialized as compact UTF-8 JSON.
    """

    max_string_chars: int | None = 64 * 1024
    max_items: int | None = 10_000
    max_depth: int | None = 32
    max_total_bytes: int | None = 256 * 1024


# Only validity (text, numbers): for values whose size something else already bounds.
TEXT_ONLY = ValueLimits(None, None, None, None)
# A whole request body: valid, and nested no deeper than any route needs; the body-size limit
# bounds the rest.
BODY = ValueLimits(None, None, 64, None)


def text_problem(text: str) -> str | None:
    """Why ``text`` is not valid text (NUL, lone surrogate), or None when it is."""
    found = _BAD_TEXT.search(text)
    if found is None:
        return None
    char, at = found.group(), found.start()
    if char == "\x00":
        return f"text may not contain NUL (U+0000), found at character {at}"
    return (
        f"text must be valid Unicode: a lone surrogate (U+{ord(char):04X}) at character {at} "
        "is not a character (invalid UTF-8 or a bad \\u escape)"
    )


def check_text(text: str, field: str, *, max_chars: int | None = None) -> str:
    """``text`` when it is valid text within ``max_chars`` characters.

    Raises:
        ValueProblem: it holds NUL or a lone surrogate, or it is too long.
    """
    problem = text_problem(text)
    if problem:
        raise ValueProblem(field, problem)
    if max_chars is not None and len(text) > max_chars:
        raise ValueProblem(field, f"text is {len(text)} characters long; at most {max_chars}")
    return text


def shown(text: str, limit: int = 80) -> str:
    """``text`` made safe to put in a message: bad characters escaped, long text cut."""
    cut = text if len(text) <= limit else text[:limit] + "..."
    return _BAD_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", cut)


def key_path(base: str, key: str) -> str:
    """``base.key``, or ``base["odd key"]`` (ASCII-escaped, cut) for keys that need quoting."""
    if _PLAIN_KEY.match(key) and len(key) <= _SHOWN_KEY_CHARS:
        return f"{base}.{key}" if base else key
    quoted = json.dumps(key[:_SHOWN_KEY_CHARS] + ("..." if len(key) > _SHOWN_KEY_CHARS else ""))
    return f"{base or 'body'}[{quoted}]"


def _children(value: Any, path: str) -> Iterator[tuple[str, Any, str | None]]:
    """(path, child, key) for each member of a list or object."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield key_path(path, key) if isinstance(key, str) else f"{path}[?]", child, key
    else:
        for index, child in enumerate(value):
            yield f"{path or 'body'}[{index}]", child, None


def check_value(value: Any, field: str, limits: ValueLimits = TEXT_ONLY) -> Any:
    """``value`` (JSON data) when every part of it is valid and within ``limits``.

    Walks the value without recursion, so depth is checked before it can hurt.

    Raises:
        ValueProblem: naming the first offending place, e.g. ``inputs.topic[2].name``.
    """
    stack: list[tuple[str, Any, int]] = [(field, value, 0)]
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, dict | list):
            _check_container(path, item, depth, limits)
            for child_path, child, key in reversed(list(_children(item, path))):
                if key is not None:
                    _check_key(child_path, key, limits)
                stack.append((child_path, child, depth + 1))
        else:
            _check_scalar(path, item, limits)
    if limits.max_total_bytes is not None:
        size = serialized_size(value)
        if size > limits.max_total_bytes:
            raise ValueProblem(
                field, f"is {size} bytes as JSON; at most {limits.max_total_bytes} bytes"
            )
    return value


def _check_container(
    path: str, item: dict[Any, Any] | list[Any], depth: int, limits: ValueLimits
) -> None:
    if limits.max_depth is not None and depth >= limits.max_depth:
        raise ValueProblem(path, f"nested deeper than {limits.max_depth} levels")
    if limits.max_items is not None and len(item) > limits.max_items:
        kind = "keys" if isinstance(item, dict) else "items"
        raise ValueProblem(path, f"has {len(item)} {kind}; at most {limits.max_items}")


def _check_key(path: str, key: Any, limits: ValueLimits) -> None:
    if not isinstance(key, str):
        raise ValueProblem(path, f"object keys must be strings, got {type(key).__name__}")
    check_text(key, path, max_chars=limits.max_string_chars)


def _check_scalar(path: str, item: Any, limits: ValueLimits) -> None:
    if isinstance(item, str):
        check_text(item, path, max_chars=limits.max_string_chars)
    elif isinstance(item, _Refused):
        raise ValueProblem(path, item.reason)
    elif isinstance(item, bool) or item is None:
        return
    elif isinstance(item, int):
        if not MIN_INT <= item <= MAX_INT:
            raise ValueProblem(path, "integer out of range (at most 64 bits, -2**63..2**63-1)")
    elif isinstance(item, float):
        if not math.isfinite(item):
            raise ValueProblem(path, "number must be finite (no NaN or infinity)")
    else:
        raise ValueProblem(path, f"not a JSON value ({type(item).__name__})")


def serialized_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON (what the database stores, near enough)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return len(text.encode("utf-8", errors="surrogatepass"))


# Strict JSON ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Refused:
    """A number the parser met and refused; reported with its path by the walk after."""

    reason: str


def _parse_int(literal: str) -> int | _Refused:
    # Python refuses to convert more than 4300 digits (and would take long before); anything
    # past 19 digits is out of the 64-bit range anyway.
    digits = literal.lstrip("-")
    if len(digits) > 19 or not MIN_INT <= int(literal) <= MAX_INT:
        return _Refused("integer out of range (at most 64 bits, -2**63..2**63-1)")
    return int(literal)


def _parse_float(literal: str) -> float | _Refused:
    number = float(literal)
    if not math.isfinite(number):
        return _Refused(f"number {shown(literal, 24)} is too large (not a finite double)")
    return number


def _parse_constant(literal: str) -> _Refused:
    return _Refused(f"{literal} is not JSON (numbers must be finite)")


def decode_utf8(data: bytes, field: str = "body") -> str:
    """``data`` as text: strict UTF-8 refuses overlong forms, encoded surrogates, stray bytes.

    Raises:
        ValueProblem: naming ``field`` and the byte offset of the first bad byte.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueProblem(
            field, f"not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}"
        ) from None


def parse_json(data: bytes | str, *, field: str = "body", limits: ValueLimits = BODY) -> Any:
    """A JSON document parsed strictly: UTF-8, valid text, finite numbers, bounded nesting.

    Args:
        data: the document; bytes must be UTF-8 (no UTF-16 guessing, no BOM).
        field: what paths start with; ``body`` (the document itself) is left out of them, so
            a launch's input is ``inputs.topic``, as the API names fields.
        limits: bounds on the parsed value.

    Raises:
        JsonSyntaxError: not JSON (with line and column).
        ValueProblem: JSON holding something refused, naming its path.
    """
    text = decode_utf8(data, field) if isinstance(data, bytes) else data
    try:
        value = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise JsonSyntaxError(field, f"not valid JSON: {exc.msg} ({where})") from None
    except RecursionError:
        # The C parser guards its own recursion (about 1000 levels), far past any limit here.
        raise ValueProblem(field, f"nested deeper than {limits.max_depth} levels") from None
    try:
        return check_value(value, "" if field == "body" else field, limits)
    except ValueProblem as exc:
        raise ValueProblem(exc.field or field, exc.message) from None


# Reading back --------------------------------------------------------------------------------


def sanitized(value: Any, depth: int = 0) -> Any:
    """``value`` safe to serialize: lone surrogates become U+FFFD, non-finite floats null.

    For data stored before the edge refused such values (old rows): a listing must answer
    even if one row holds one. Past ``SHOWN_DEPTH`` levels a value is replaced by a note
    rather than risk the recursion limit. Anything else is returned unchanged.
    """
    if isinstance(value, str):
        return _SURROGATE.sub(REPLACEMENT, value) if _SURROGATE.search(value) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict | list | tuple) and depth >= SHOWN_DEPTH:
        return TOO_DEEP
    if isinstance(value, dict):
        return {sanitized(k, depth): sanitized(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sanitized(v, depth + 1) for v in value]
    return value
