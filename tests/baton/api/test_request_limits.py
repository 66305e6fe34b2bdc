"""The edge of the API on SQLite and Postgres: bad text, bad numbers, deep nesting and oversized
bodies, anywhere they can enter, answer 413 or 422 naming the field; nothing is stored and the
API keeps answering."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.baton.api.edge_world import assert_refused, edge_world, stored
from tests.baton.api.world import World

MIB = 1024 * 1024


@pytest.fixture
def w(tmp_path: Path, db_url: str) -> Iterator[World]:
    yield from edge_world(tmp_path, db_url)


def _launch(w: World, inputs: bytes, *, orchestration: bytes = b'"acme-bag"') -> object:
    body = b'{"orchestration":' + orchestration + b',"inputs":' + inputs + b"}"
    return w.client.post(
        "/api/v1/runs",
        content=body,
        headers={**w.headers("acme", "operator"), "content-type": "application/json"},
    )


def _still_fine(w: World, before: object) -> None:
    assert stored(w) == before
    assert w.client.get("/healthz").status_code == 200
    listing = w.client.get("/api/v1/runs", headers=w.headers("acme", "viewer"))
    assert listing.status_code == 200, listing.text


# Launch inputs: every class of bad value, at every depth ---------------------------------------

BAD_INPUTS = [
    ("high surrogate", rb'{"name":"\ud800"}', "inputs.name"),
    ("low surrogate", rb'{"name":"abc\udc00"}', "inputs.name"),
    ("reversed pair", rb'{"name":"\udc00\ud800"}', "inputs.name"),
    ("surrogate key", rb'{"name":"a","\ud800":1}', 'inputs["\\ud800"]'),
    ("nested value", rb'{"name":"a","topic":["x",{"name":"\udbff"}]}', "inputs.topic[1].name"),
    ("nested key", rb'{"name":"a","meta":{"k":{"\udfff":1}}}', 'inputs.meta.k["\\udfff"]'),
    ("NUL value", rb'{"name":"a\u0000b"}', "inputs.name"),
    ("NUL key", rb'{"name":"a","meta":{"\u0000":1}}', 'inputs.meta["\\u0000"]'),
    ("NUL deep", rb'{"name":"a","topic":[[["\u0000"]]]}', "inputs.topic[0][0][0]"),
    ("huge float", rb'{"name":"a","n":1e999999}', "inputs.n"),
    ("huge negative float", rb'{"name":"a","n":-1e999999}', "inputs.n"),
    ("NaN", rb'{"name":"a","n":NaN}', "inputs.n"),
    ("Infinity", rb'{"name":"a","n":Infinity}', "inputs.n"),
    ("huge int", b'{"name":"a","n":' + b"9" * 100_000 + b"}", "inputs.n"),
    ("int past 64 bits", b'{"name":"a","n":' + str(2**64).encode() + b"}", "inputs.n"),
    ("deep nesting", b'{"name":"a","topic":' + b"[" * 100_000 + b"}", "body"),
    ("invalid byte", b'{"name":"\xff"}', "body"),
    ("overlong slash", b'{"name":"\xc0\xaf"}', "body"),
    ("overlong three bytes", b'{"name":"\xe0\x80\xaf"}', "body"),
    ("encoded surrogate", b'{"name":"\xed\xa0\x80"}', "body"),
    ("truncated character", b'{"name":"\xe2\x82"}', "body"),
    ("string over the limit", b'{"name":"' + b"x" * 70_000 + b'"}', "inputs.name"),
    (
        "list over the limit",
        b'{"name":"a","topic":' + json.dumps([0] * 20_000).encode() + b"}",
        "inputs.topic",
    ),
    (
        "too deep for an input",
        b'{"name":"a","topic":' + b"[" * 40 + b"]" * 40 + b"}",
        "inputs.topic" + "[0]" * 32,
    ),
    (
        "inputs over the total",
        b'{"name":"a","meta":' + json.dumps({k: "x" * 60_000 for k in "abcde"}).encode() + b"}",
        "inputs",
    ),
]


@pytest.mark.parametrize(
    ("body", "field"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_a_bad_input_is_refused_422_naming_it_and_nothing_is_stored(
    w: World, body: bytes, field: str
) -> None:
    before = stored(w)
    assert_refused(_launch(w, body), 422, field)
    _still_fine(w, before)


def test_bad_text_in_the_orchestration_field_is_refused(w: World) -> None:
    before = stored(w)
    assert_refused(
        _launch(w, b'{"name":"a"}', orchestration=rb'"acme-bag\u0000"'), 422, "orchestration"
    )
    assert_refused(_launch(w, b'{"name":"a"}', orchestration=rb'"\ud800"'), 422, "orchestration")
    _still_fine(w, before)


def test_good_inputs_still_launch_and_list(w: World) -> None:
    body = rb'{"name":"Ada \ud83d\ude00","topic":["x",{"k":[1,2.5,null]}],"n":3}'
    response = _launch(w, body)
    assert response.status_code == 202, response.text  # type: ignore[attr-defined]
    [run] = w.client.get("/api/v1/runs", headers=w.headers("acme", "viewer")).json()["items"]
    assert run["inputs"]["name"] == "Ada \U0001f600"


# Body size: every route, with and without Content-Length ---------------------------------------


def _chunks(size: int, piece: int = 64 * 1024) -> Iterator[bytes]:
    """A JSON body of ``size`` bytes, sent chunked (no Content-Length)."""
    yield b'{"orchestration":"acme-bag","inputs":{"name":"'
    sent = 0
    while sent < size:
        yield b"x" * piece
        sent += piece
    yield b'"}}'


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_20_mb_launch_is_refused_413(w: World, chunked: bool) -> None:
    before = stored(w)
    headers = {**w.headers("acme", "operator"), "content-type": "application/json"}
    content = _chunks(20 * MIB) if chunked else b"".join(_chunks(20 * MIB))
    response = w.client.post("/api/v1/runs", content=content, headers=headers)
    error = assert_refused(response, 413)
    assert str(MIB) in error["message"] and "BATON_API__MAX_BODY_BYTES" in error["message"]
    _still_fine(w, before)


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [
        ("POST", "/api/v1/runs/{run}/abort", "application/json"),
        ("POST", "/api/v1/approvals/{approval}/decision", "application/json"),
        ("POST", "/api/v1/orchestrations/validate", "application/yaml"),
        ("POST", "/ui/login", "application/x-www-form-urlencoded"),
        ("GET", "/api/v1/runs", "application/json"),
        ("POST", "/api/v1/nowhere", "text/plain"),
    ],
)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_every_route_has_the_body_limit(
    w: World, method: str, path: str, content_type: str, chunked: bool
) -> None:
    run, approval = w.waiting_run()
    before = stored(w)
    size = MIB + 1
    content = _chunks(size, 1000) if chunked else b"x" * size
    response = w.client.request(
        method,
        path.format(run=run, approval=approval),
        content=content,
        headers={**w.headers("acme", "admin"), "content-type": content_type},
    )
    assert_refused(response, 413)
    _still_fine(w, before)


def test_a_body_just_under_the_limit_reaches_the_route(w: World) -> None:
    response = _launch(w, b'{"name":"a","pad":"' + b"x" * (MIB - 200) + b'"}')
    # The route answered (no input 'pad'), not the body limit.
    assert_refused(response, 422, "inputs.pad")


def test_a_million_items_is_refused_by_size_then_by_the_list_limit(
    tmp_path: Path, db_url: str
) -> None:
    items = b"[" + b",".join([b"0"] * 1_000_000) + b"]"
    for w in edge_world(tmp_path / "small", db_url):
        assert_refused(_launch(w, b'{"name":"a","topic":' + items + b"}"), 413)
    for w in edge_world(tmp_path / "large", db_url, max_body_bytes=8 * MIB):
        before = stored(w)
        error = assert_refused(
            _launch(w, b'{"name":"a","topic":' + items + b"}"), 422, "inputs.topic"
        )
        assert "1000000 items; at most 10000" in error["message"]
        _still_fine(w, before)


# URL, headers, cookies ----------------------------------------------------------------------

BAD_URLS = [
    ("/api/v1/runs?orchestration=a%00b", "orchestration"),
    ("/api/v1/runs?orchestration=%ff", "orchestration"),
    ("/api/v1/runs?orchestration=%ed%a0%80", "orchestration"),
    ("/api/v1/runs?orchestration=%c0%af", "orchestration"),
    ("/api/v1/runs?%00=1", "query"),
    ("/api/v1/runs?status=running&cursor=%00", "cursor"),
    ("/api/v1/approvals?status=%00", "status"),
    ("/api/v1/events?cursor=x%00", "cursor"),
    ("/api/v1/orchestrations/a%00b", "path"),
    ("/api/v1/orchestrations/%ff", "path"),
    ("/api/v1/orchestrations/%ed%b0%80", "path"),
    ("/api/v1/runs/%00", "path"),
    ("/ui/approvals/%00", "path"),
    ("/ui/login?next=/ui/%00", "next"),
]


@pytest.mark.parametrize(("url", "field"), BAD_URLS)
def test_bad_text_in_a_path_or_query_is_422_not_500(w: World, url: str, field: str) -> None:
    before = stored(w)
    assert_refused(w.client.get(url, headers=w.headers("acme", "viewer")), 422, field)
    _still_fine(w, before)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/runs/{run}/steps/a%00b/retry",
        "/api/v1/runs/{run}/steps/%ed%a0%80/skip",
        "/api/v1/approvals/{approval}%00/decision",
        "/webhooks/git%00hub",
    ],
)
def test_bad_text_in_a_posted_path_is_422_and_changes_nothing(w: World, path: str) -> None:
    _, approval = w.waiting_run()
    failed = w.failed_run()
    before = stored(w)
    url = path.format(run=failed, approval=approval)
    response = w.client.post(url, json={"decision": "continue"}, headers=w.headers("acme", "admin"))
    assert_refused(response, 422, "path")
    _still_fine(w, before)


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"Last-Event-ID": "4\x002"}, "last-event-id"),
        ({"X-Anything": "a\x00"}, "x-anything"),
        ({"Cookie": 'baton_session="\\000"'}, "baton_session"),
        ({"Cookie": "a=1; baton_login=x\x00y"}, "cookie"),
    ],
)
def test_nul_in_a_header_or_cookie_is_422(w: World, headers: dict[str, str], field: str) -> None:
    before = stored(w)
    response = w.client.get("/api/v1/events", headers={**w.headers("acme", "viewer"), **headers})
    assert_refused(response, 422, field)
    _still_fine(w, before)


# Decisions ------------------------------------------------------------------------------------

BAD_DECISIONS = [
    (
        "surrogate value",
        rb'{"decision":"continue","modifications":{"greeting":"\ud800"}}',
        "modifications.greeting",
    ),
    (
        "surrogate key",
        rb'{"decision":"continue","modifications":{"\udc00":"x"}}',
        'modifications["\\udc00"]',
    ),
    (
        "NUL value",
        rb'{"decision":"continue","modifications":{"greeting":"a\u0000"}}',
        "modifications.greeting",
    ),
    ("surrogate comment", rb'{"decision":"continue","comment":"ok \udfff"}', "comment"),
    ("NUL comment", rb'{"decision":"abort","comment":"\u0000"}', "comment"),
    (
        "nested surrogate",
        rb'{"decision":"continue","modifications":{"greeting":[{"a":"\ud800"}]}}',
        "modifications.greeting[0].a",
    ),
    (
        "huge number",
        rb'{"decision":"continue","modifications":{"greeting":1e999999}}',
        "modifications.greeting",
    ),
    (
        "long change",
        b'{"decision":"continue","modifications":{"greeting":"' + b"x" * 70_000 + b'"}}',
        "modifications.greeting",
    ),
    (
        "many items",
        b'{"decision":"continue","modifications":{"greeting":'
        + json.dumps(list(range(20_000))).encode()
        + b"}}",
        "modifications.greeting",
    ),
    (
        "changes over the total",
        b'{"decision":"continue","modifications":'
        + json.dumps({k: "x" * 60_000 for k in "abcde"}).encode()
        + b"}",
        "modifications",
    ),
    (
        "deep",
        b'{"decision":"continue","modifications":{"greeting":' + b"[" * 5000 + b"]" * 5000 + b"}}",
        "body",
    ),
    ("invalid UTF-8", b'{"decision":"continue","comment":"\xed\xa0\x80"}', "body"),
]


@pytest.mark.parametrize(
    ("body", "field"), [c[1:] for c in BAD_DECISIONS], ids=[c[0] for c in BAD_DECISIONS]
)
def test_a_bad_decision_is_refused_and_the_approval_stays_pending(
    w: World, body: bytes, field: str
) -> None:
    _, approval = w.waiting_run()
    before = stored(w)
    response = w.client.post(
        f"/api/v1/approvals/{approval}/decision",
        content=body,
        headers={**w.headers("acme", "approver"), "content-type": "application/json"},
    )
    assert_refused(response, 422, field)
    _still_fine(w, before)
    view = w.client.get(f"/api/v1/approvals/{approval}", headers=w.headers("acme", "viewer"))
    assert view.json()["status"] == "pending"


def test_a_good_decision_still_goes_through(w: World) -> None:
    _, approval = w.waiting_run()
    response = w.client.post(
        f"/api/v1/approvals/{approval}/decision",
        json={
            "decision": "continue",
            "modifications": {"greeting": "Hi \U0001f600"},
            "comment": "ok",
        },
        headers=w.headers("acme", "approver"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["modifications"] == {"greeting": "Hi \U0001f600"}
