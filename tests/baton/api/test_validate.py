"""POST /orchestrations/validate under YAML bombs: a real uvicorn server keeps answering
/healthz while bombs are validated, and every bomb gets a clear answer (200 with errors, 413
or 422), never a 500."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.baton.api.world import World, build_world
from tests.e2e.deploy import free_port

URL = "/api/v1/orchestrations/validate"
FLOW = "slug: demo\nname: Demo\nversion: 1\nsteps:\n  - id: a\n    agent: echo\n"


def _laughs() -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


def _merge_laughs() -> str:
    lines = ["m0: &m0 {a: lol, b: lol, c: lol, d: lol, e: lol, f: lol, g: lol, h: lol, i: lol}"]
    for i in range(1, 9):
        items = ", ".join(f"k{j}: *m{i - 1}" for j in range(8))
        lines.append(f"m{i}: &m{i} {{<<: *m{i - 1}, {items}}}")
    return "\n".join(lines) + "\n"


def _legal_but_large(count: int = 9_000) -> str:
    # 9,000 steps is near the node limit: about the slowest document the loader accepts.
    steps = "".join(f"  - id: s{i}\n    agent: echo\n    with: {{n: {i}}}\n" for i in range(count))
    return "slug: big\nname: Big\nversion: 1\nsteps:\n" + steps


BOMBS = {
    "billion-laughs": (_laughs(), "more than 100000 nodes"),
    "merge-laughs": (_merge_laughs(), "more than 100000 nodes"),
    "deep-flow": ("[" * 100_000 + "]" * 100_000, "nesting"),
    "deep-block": ("".join("  " * i + f"k{i}:\n" for i in range(300)), "nesting deeper"),
    "python-name": (FLOW + "x: !!python/name:os.system\n", "is not allowed"),
    "python-apply": (FLOW + "x: !!python/object/apply:os.system [id]\n", "is not allowed"),
    "python-new": (FLOW + "x: !!python/object/new:os.system [id]\n", "is not allowed"),
    "python-module": (FLOW + "x: !!python/module:os\n", "is not allowed"),
    "custom-tag": (FLOW + "x: !include /etc/passwd\n", "is not allowed"),
    "sexagesimal": ("a: 1" + ":59" * 50_000 + "\n", "a number longer than"),
    "too-many-nodes": (_legal_but_large(12_000), "more than 100000 nodes"),
    # Template bombs: validation parses every template (its run-time bounds are the worker's).
    "template-filter-chain": (
        FLOW.replace("steps:", "outputs:\n  x: '{{ a" + "|upper" * 20_000 + " }}'\nsteps:"),
        "nested too deeply",
    ),
    "template-attribute-chain": (
        FLOW.replace("steps:", "outputs:\n  x: '{{ inputs" + ".a" * 20_000 + " }}'\nsteps:"),
        "nested too deeply",
    ),
    "template-parentheses": (
        FLOW.replace(
            "steps:", "outputs:\n  x: '{{ " + "(" * 20_000 + ")" * 20_000 + " }}'\nsteps:"
        ),
        "nested too deeply",
    ),
}


@pytest.fixture
def served(tmp_path: Path, sqlite_db: str) -> Iterator[tuple[World, str]]:
    """The app on a real uvicorn server on 127.0.0.1, in a thread."""
    world = build_world(tmp_path, sqlite_db)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(world.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield world, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        world.client.__exit__(None, None, None)


def test_every_bomb_gets_a_clear_answer_with_a_place(world: World) -> None:
    headers = world.headers("acme", "viewer")
    for name, (text, expected) in BOMBS.items():
        response = world.client.post(URL, content=text, headers=headers)
        assert response.status_code == 200, name
        body = response.json()
        assert body["valid"] is False, name
        assert any(expected in e["message"] for e in body["errors"]), (name, body)
        assert all(e["line"] is not None for e in body["errors"]), (name, body)


def test_a_large_legal_document_is_still_validated(world: World) -> None:
    response = world.client.post(
        URL, content=_legal_but_large(), headers=world.headers("acme", "viewer")
    )
    assert response.status_code == 200
    assert response.json()["valid"] is True


def test_a_50_mb_body_is_refused_with_413_and_a_non_utf8_body_with_422(world: World) -> None:
    headers = world.headers("acme", "viewer")
    response = world.client.post(URL, content=b"a: " + b"x" * (50 * 1024 * 1024), headers=headers)
    assert response.status_code == 413
    response = world.client.post(URL, content=b"a: \xff\xfe\n", headers=headers)
    assert response.status_code == 422


def test_healthz_keeps_answering_while_bombs_are_validated(served: tuple[World, str]) -> None:
    world, base = served
    headers = world.headers("acme", "viewer")
    bodies = [text for text, _ in BOMBS.values()] + [_legal_but_large()]
    bodies.append("a: " + "x" * (50 * 1024 * 1024))
    done = threading.Event()
    health: list[int] = []

    def validate(text: str) -> int:
        with httpx.Client(base_url=base, timeout=120) as client:
            return client.post(URL, content=text, headers=headers).status_code

    def probe() -> None:
        # A generous timeout: what is tested is that the event loop answers at all while
        # parses run, not how fast (bench/ measures speed).
        with httpx.Client(base_url=base, timeout=10) as client:
            while not done.is_set():
                health.append(client.get("/healthz").status_code)
                time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(validate, bodies))
    finally:
        done.set()
        prober.join(30)
    assert statuses == [200] * (len(bodies) - 1) + [413]
    assert len(health) > 1 and set(health) == {200}
