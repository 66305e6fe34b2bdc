"""The decision form's fields: prefilled text, typed parsing, only changes kept."""

from __future__ import annotations

import pytest

from baton.api.ui.forms import (
    FormError,
    as_text,
    decision_of,
    field_inputs,
    modifications,
    parse_value,
)

MODIFIABLE = {
    "title": "string",
    "words": "integer",
    "ratio": "number",
    "draft": "boolean",
    "tags": "array",
    "meta": "object",
}
CURRENT = {
    "title": "Hello",
    "words": 100,
    "ratio": 0.5,
    "draft": True,
    "tags": ["a"],
    "meta": {"k": 1},
}


def prefilled() -> dict[str, str]:
    return {f.input_name: f.text for f in field_inputs(MODIFIABLE, CURRENT)}


def test_fields_are_prefilled_with_the_current_values_as_text() -> None:
    form = prefilled()
    assert form["mod__title"] == "Hello"
    assert form["mod__words"] == "100"
    assert form["mod__ratio"] == "0.5"
    assert form["mod__draft"] == "true"
    assert form["mod__tags"] == '[\n  "a"\n]'
    assert as_text(None, "string") == "" and as_text(3, "string") == "3"


def test_an_untouched_form_changes_nothing() -> None:
    assert modifications(prefilled(), MODIFIABLE, CURRENT) == {}
    # Textareas come back with CRLF line breaks.
    form = {**prefilled(), "mod__tags": prefilled()["mod__tags"].replace("\n", "\r\n")}
    assert modifications(form, MODIFIABLE, CURRENT) == {}
    assert modifications({}, MODIFIABLE, CURRENT) == {}


def test_changed_fields_are_typed() -> None:
    form = {
        **prefilled(),
        "mod__title": "Line 1\r\nLine 2",
        "mod__words": " 250 ",
        "mod__ratio": "1e-3",
        "mod__draft": "false",
        "mod__tags": '["a", "b"]',
        "mod__meta": '{"k": 2}',
    }
    assert modifications(form, MODIFIABLE, CURRENT) == {
        "title": "Line 1\nLine 2",
        "words": 250,
        "ratio": 0.001,
        "draft": False,
        "tags": ["a", "b"],
        "meta": {"k": 2},
    }


def test_a_field_missing_from_the_reviewed_value_is_set_only_when_filled() -> None:
    assert modifications({"mod__title": ""}, {"title": "string"}, {}) == {}
    assert modifications({"mod__title": "x"}, {"title": "string"}, "not a dict") == {"title": "x"}


@pytest.mark.parametrize(
    ("text", "type_", "message"),
    [
        ("many", "integer", "field 'f' must be an integer, got 'many'"),
        ("1.5", "integer", "must be an integer"),
        ("abc", "number", "must be a number"),
        ("inf", "number", "must be a finite number"),
        ("yes", "boolean", "must be true or false"),
        ("[1,", "array", "must be JSON"),
        ('{"a": 1}', "array", "must be a JSON array"),
        ("[1]", "object", "must be a JSON object"),
    ],
)
def test_bad_values_name_the_field(text: str, type_: str, message: str) -> None:
    with pytest.raises(FormError, match=message) as info:
        parse_value(text, type_, "f")
    assert info.value.field == "modifications.f"


def test_the_decision_must_be_one_of_the_three() -> None:
    assert decision_of({"decision": "retry"}) == "retry"
    with pytest.raises(FormError, match="decision must be one of continue, retry, abort"):
        decision_of({})
    with pytest.raises(FormError) as info:
        decision_of({"decision": "publish"})
    assert info.value.field == "decision"
