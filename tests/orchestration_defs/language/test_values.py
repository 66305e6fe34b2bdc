"""Untrusted values: strict JSON, text checks with the offending path, bounds, safe read-back."""

from __future__ import annotations

import json

import pytest

from orchestration_defs.language.values import (
    TOO_DEEP,
    JsonSyntaxError,
    ValueLimits,
    ValueProblem,
    check_text,
    check_value,
    key_path,
    parse_json,
    sanitized,
    shown,
)


def _refused(data: bytes | str, **kw: object) -> ValueProblem:
    with pytest.raises(ValueProblem) as caught:
        parse_json(data, **kw)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (rb'{"inputs":{"topic":[1,2,{"name":"\ud800"}]}}', "inputs.topic[2].name", "U+D800"),
        (rb'{"inputs":{"topic":"\udfff"}}', "inputs.topic", "lone surrogate (U+DFFF)"),
        (rb'{"a":"ok\ud83d"}', "a", "U+D83D"),  # a high surrogate with no low one after it
        (rb'{"a":"\ude00\ud83d"}', "a", "U+DE00"),  # a pair in the wrong order
        (rb'{"inputs":{"\ud800":1}}', 'inputs["\\ud800"]', "lone surrogate"),
        (rb'{"inputs":{"x":{"k\udc00":1}}}', 'inputs.x["k\\udc00"]', "lone surrogate"),
        (rb'{"a":"x\u0000y"}', "a", "NUL"),
        (rb'{"a\u0000":1}', 'body["a\\u0000"]', "NUL"),
        (rb'[["\u0000"]]', "body[0][0]", "NUL"),
    ],
)
def test_bad_text_anywhere_is_refused_with_its_path(body: bytes, field: str, says: str) -> None:
    problem = _refused(body)
    assert problem.field == field
    assert says in problem.message
    # The message never carries the bad character itself: it is safe to encode and log.
    str(problem).encode("utf-8")
    assert "\x00" not in str(problem)


def test_a_valid_surrogate_pair_is_one_character_and_accepted() -> None:
    assert parse_json(rb'["\ud83d\ude00"]') == ["\U0001f600"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":"\xff"}',  # a byte that is never UTF-8
        b'{"a":"\xc0\xaf"}',  # overlong "/"
        b'{"a":"\xe0\x80\xaf"}',  # overlong, three bytes
        b'{"a":"\xed\xa0\x80"}',  # an encoded surrogate (CESU-8)
        b'{"a":"\xf4\x90\x80\x80"}',  # past U+10FFFF
        b'{"a":"\xe2\x82"}',  # cut in the middle of a character
        b"\xff\xfe{\x00}\x00",  # UTF-16: json.loads(bytes) would guess it
    ],
)
def test_invalid_utf8_is_refused_at_its_byte(body: bytes) -> None:
    problem = _refused(body)
    assert problem.field == "body" and problem.message.startswith("not valid UTF-8")
    assert "offset" in problem.message


@pytest.mark.parametrize(
    ("literal", "says"),
    [
        ("1e999999", "not a finite double"),
        ("-1e999999", "not a finite double"),
        ("1.5e309", "not a finite double"),
        ("NaN", "NaN is not JSON"),
        ("Infinity", "Infinity is not JSON"),
        ("-Infinity", "-Infinity is not JSON"),
        ("1" * 100_000, "integer out of range"),  # past Python's 4300-digit conversion limit
        (str(2**63), "integer out of range"),
        (str(-(2**63) - 1), "integer out of range"),
    ],
)
def test_numbers_json_cannot_carry_are_refused(literal: str, says: str) -> None:
    problem = _refused('{"inputs":{"n":[' + literal + "]}}")
    assert problem.field == "inputs.n[0]" and says in problem.message


def test_the_64_bit_bounds_and_tiny_floats_are_fine() -> None:
    assert parse_json(f"[{2**63 - 1}, {-(2**63)}, 1e-999999]") == [2**63 - 1, -(2**63), 0.0]


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_nesting_past_the_depth_is_refused_without_a_traceback(depth: int) -> None:
    problem = _refused("[" * depth + "]" * depth)
    assert "nested deeper than 64 levels" in problem.message


def test_nesting_up_to_the_depth_is_fine() -> None:
    assert parse_json("[" * 64 + "]" * 64) is not None


def test_a_syntax_error_is_its_own_kind_with_line_and_column() -> None:
    with pytest.raises(JsonSyntaxError, match=r"line 2, column 1"):
        parse_json('{"a": 1,\n}')


def test_a_field_other_than_body_starts_the_paths() -> None:
    problem = _refused('{"k": "\\u0000"}', field="modifications.title")
    assert problem.field == "modifications.title.k"


@pytest.mark.parametrize(
    ("value", "field", "says"),
    [
        ("x" * 11, "inputs.s", "11 characters long; at most 10"),
        ({"k" * 11: 1}, "inputs.s.kkkkkkkkkkk", "11 characters long"),
        (list(range(6)), "inputs.s", "6 items; at most 5"),
        ({str(i): i for i in range(6)}, "inputs.s", "6 keys; at most 5"),
        ([[[[1]]]], "inputs.s[0][0][0]", "nested deeper than 3 levels"),
        (["abcdefghi"] * 5, "inputs.s", "bytes as JSON; at most 40 bytes"),
        (float("inf"), "inputs.s", "finite"),
        (float("nan"), "inputs.s", "finite"),
        (10**30, "inputs.s", "integer out of range"),
        ({1: "a"}, "inputs.s[?]", "keys must be strings"),
        (object(), "inputs.s", "not a JSON value"),
    ],
)
def test_check_value_bounds_each_dimension(value: object, field: str, says: str) -> None:
    limits = ValueLimits(max_string_chars=10, max_items=5, max_depth=3, max_total_bytes=40)
    with pytest.raises(ValueProblem) as caught:
        check_value(value, "inputs.s", limits)
    assert caught.value.field == field and says in caught.value.message


def test_within_every_bound_the_value_is_returned() -> None:
    limits = ValueLimits(max_string_chars=10, max_items=5, max_depth=3, max_total_bytes=60)
    value = {"a": ["x" * 10, 1, 2.5, None, True], "b": {"c": []}}
    assert check_value(value, "inputs.s", limits) is value


def test_total_size_counts_utf8_bytes() -> None:
    with pytest.raises(ValueProblem, match="bytes as JSON"):
        check_value("é" * 10, "x", ValueLimits(None, None, None, 21))  # 20 bytes + 2 quotes
    check_value("é" * 10, "x", ValueLimits(None, None, None, 22))


def test_a_very_deep_path_is_cut_in_the_middle() -> None:
    problem = ValueProblem("inputs" + ".k" * 500, "bad")
    assert len(problem.field) < 320 and problem.field.startswith("inputs.k")
    assert "..." in problem.field


def test_check_text_and_shown() -> None:
    assert check_text("fine", "f") == "fine"
    with pytest.raises(ValueProblem, match="NUL"):
        check_text("a\x00", "f")
    with pytest.raises(ValueProblem, match="lone surrogate"):
        check_text("\udc80", "f")  # what surrogateescape makes of a stray byte in argv
    assert shown("a\x00b\ud800") == "a\\u0000b\\ud800"
    assert shown("x" * 100, 10) == "x" * 10 + "..."


def test_key_path_quotes_what_is_not_a_plain_name() -> None:
    assert key_path("inputs", "topic") == "inputs.topic"
    assert key_path("", "topic") == "topic"
    assert key_path("inputs", "a b") == 'inputs["a b"]'
    assert key_path("inputs", "k" * 100) == 'inputs["' + "k" * 64 + '..."]'


def test_sanitized_makes_old_values_serializable() -> None:
    old = {"\ud800k": ["x\udfff", float("inf"), float("-inf"), float("nan"), 1, None], "ok": "é"}
    clean = sanitized(old)
    assert clean == {"\ufffdk": ["x\ufffd", None, None, None, 1, None], "ok": "é"}
    json.dumps(clean, ensure_ascii=False, allow_nan=False).encode("utf-8")


def test_sanitized_stops_at_a_depth_instead_of_recursing_forever() -> None:
    deep: list[object] = []
    node = deep
    for _ in range(5000):
        child: list[object] = []
        node.append(child)
        node = child
    clean = sanitized(deep)
    for _ in range(100):
        clean = clean[0]
    assert clean == TOO_DEEP
