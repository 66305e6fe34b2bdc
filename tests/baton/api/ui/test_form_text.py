"""The approvals page's forms on SQLite and Postgres: a NUL or a lone surrogate in any field, a
change over the limits or JSON the API would refuse answers 422 with the field on the page, and
nothing is stored."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.baton.api.edge_world import edge_world, stored
from tests.baton.api.world import World


@pytest.fixture
def w(tmp_path: Path, db_url: str) -> Iterator[World]:
    yield from edge_world(tmp_path, db_url)


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def _signed_in(w: World) -> TestClient:
    c = w.client
    csrf = _csrf(c.get("/ui/login").text)
    c.post("/ui/login", data={"token": w.tokens[("acme", "approver")], "csrf": csrf, "next": ""})
    return c


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"comment": "fine\x00"}, "comment"),
        ({"decision": "continue\x00"}, "decision"),
        ({"mod__greeting": "Hi\x00"}, "mod__greeting"),
        ({"x\x00": "1"}, "form"),
        ({"mod__greeting": "y" * 70_000}, "modifications.greeting"),
        ({"comment": "c" * 6000}, "comment"),
    ],
)
def test_a_bad_form_field_is_refused_on_the_page(
    w: World, fields: dict[str, str], field: str
) -> None:
    _, approval = w.waiting_run()
    c = _signed_in(w)
    before = stored(w)
    csrf = _csrf(c.get(f"/ui/approvals/{approval}").text)
    response = c.post(
        f"/ui/approvals/{approval}/decision",
        data={"csrf": csrf, "decision": "continue", **fields},
    )
    assert response.status_code == 422, response.text
    assert field in response.text
    assert stored(w) == before
    assert c.get(f"/ui/approvals/{approval}").status_code == 200


@pytest.mark.parametrize("bad", ["%ED%A0%80", "%C0%AF", "%FF", "%00"])
def test_bytes_that_are_not_text_in_a_form_are_refused(w: World, bad: str) -> None:
    """Percent-encoded bytes that are not UTF-8 text: an encoded surrogate, an overlong form,
    a stray byte (Starlette alone would store U+FFFD in their place), NUL."""
    _, approval = w.waiting_run()
    c = _signed_in(w)
    before = stored(w)
    csrf = _csrf(c.get(f"/ui/approvals/{approval}").text)
    response = c.post(
        f"/ui/approvals/{approval}/decision",
        content=f"csrf={csrf}&decision=continue&comment={bad}",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "comment"
    assert stored(w) == before


def test_a_nul_in_the_sign_in_form_is_refused(w: World) -> None:
    csrf = _csrf(w.client.get("/ui/login").text)
    response = w.client.post("/ui/login", data={"token": "bt_\x00", "csrf": csrf, "next": ""})
    assert response.status_code == 422 and "token" in response.text
