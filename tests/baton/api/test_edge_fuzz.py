"""Hypothesis over launch and decision bodies built from any code point (NUL and lone surrogates
included, sent as JSON ``\\u`` escapes) and any number: the answer is 202/200 or 422, never 500;
a refused request stores nothing, and the listings keep answering after every accepted one.

A fixed budget of examples on SQLite, so this stays in the default run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.baton.api.edge_world import edge_world, stored
from tests.baton.api.world import World

ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=12)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, ANY_TEXT),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(ANY_TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)
BUDGET = settings(
    max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None
)


def _json(value: Any) -> bytes:
    # ensure_ascii writes lone surrogates and NUL as \u escapes, the common vector; allow_nan
    # writes NaN/Infinity, which strict JSON refuses.
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


@pytest.fixture
def w(tmp_path: Path, sqlite_db: str) -> Iterator[World]:
    yield from edge_world(tmp_path, sqlite_db)


def _lists_answer(w: World) -> None:
    viewer = w.headers("acme", "viewer")
    for url in ("/api/v1/runs", "/api/v1/events", "/api/v1/approvals"):
        assert w.client.get(url, headers=viewer).status_code == 200, url


def test_launch_bodies_never_get_a_500(w: World) -> None:
    headers = {**w.headers("acme", "operator"), "content-type": "application/json"}

    @BUDGET
    @given(name=ANY_TEXT, extra=st.dictionaries(ANY_TEXT, VALUES, max_size=3))
    def launch(name: str, extra: dict[str, Any]) -> None:
        before = stored(w)
        inputs = {"name": name, "meta": extra, "topic": list(extra.values())}
        body = _json({"orchestration": "acme-bag", "inputs": inputs})
        response = w.client.post("/api/v1/runs", content=body, headers=headers)
        assert response.status_code in (202, 422), response.text
        if response.status_code == 422:
            assert response.json()["error"]["field"]
            assert stored(w) == before
        _lists_answer(w)

    launch()


def test_decision_bodies_never_get_a_500(w: World) -> None:
    headers = {**w.headers("acme", "approver"), "content-type": "application/json"}

    @BUDGET
    @given(greeting=VALUES, comment=st.one_of(st.none(), ANY_TEXT))
    def decide(greeting: Any, comment: str | None) -> None:
        _, approval = w.waiting_run()
        before = stored(w)
        body = _json(
            {"decision": "continue", "modifications": {"greeting": greeting}, "comment": comment}
        )
        response = w.client.post(
            f"/api/v1/approvals/{approval}/decision", content=body, headers=headers
        )
        assert response.status_code in (200, 422), response.text
        if response.status_code == 422:
            assert stored(w) == before
        _lists_answer(w)

    decide()
