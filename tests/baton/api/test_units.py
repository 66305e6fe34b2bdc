"""Unit tests: role rules, the token bucket, cursors."""

from __future__ import annotations

import pytest

from baton.api.auth import allows, require
from baton.api.errors import ApiError
from baton.api.pagination import decode_cursor, encode_cursor
from baton.api.ratelimit import RateLimiter


@pytest.mark.parametrize(
    ("role", "granted"),
    [
        ("viewer", {"viewer"}),
        ("operator", {"viewer", "operator"}),
        ("approver", {"viewer", "approver"}),
        ("admin", {"viewer", "operator", "approver", "admin"}),
    ],
)
def test_roles(role: str, granted: set[str]) -> None:
    assert {r for r in ("viewer", "operator", "approver", "admin") if allows(role, r)} == granted


def test_require_refuses_an_unknown_role() -> None:
    with pytest.raises(ValueError, match="role must be one of"):
        require("root")


def test_token_bucket_refills_at_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter("launch", 6, clock=lambda: now[0])  # one per 10 s
    assert all(limiter.take("t") == 0 for _ in range(6))
    assert limiter.take("t") == pytest.approx(10)
    assert limiter.take("other") == 0
    now[0] = 5
    assert limiter.take("t") == pytest.approx(5)
    now[0] = 10
    assert limiter.take("t") == 0
    with pytest.raises(ApiError) as caught:
        limiter.check("t")
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "10"


def test_cursors_round_trip_and_refuse_garbage() -> None:
    assert decode_cursor(encode_cursor("2026-01-01T00:00:00+00:00", "x"), 2) == [
        "2026-01-01T00:00:00+00:00",
        "x",
    ]
    for bad in ("", "!!!", encode_cursor(1), "e30"):
        with pytest.raises(ApiError) as caught:
            decode_cursor(bad, 2)
        assert caught.value.field == "cursor"


def test_query_cursors_with_bad_content_are_422() -> None:
    from baton.api.queries import _cursor_time, _cursor_uuid, event_cursor

    for call in (
        lambda: _cursor_time("yesterday"),
        lambda: _cursor_uuid("nope"),
        lambda: event_cursor(encode_cursor(-1)),
        lambda: event_cursor(encode_cursor("x")),
    ):
        with pytest.raises(ApiError) as caught:
            call()
        assert caught.value.status == 422 and caught.value.field == "cursor"
    assert event_cursor(encode_cursor(7)) == 7
