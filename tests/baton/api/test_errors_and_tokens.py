"""One error shape everywhere; tokens: hashed, revocable; rate limits; health probes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from baton.db.engine import session_scope
from baton.db.models import ApiToken
from tests.baton.api.world import World, build_world


def test_framework_errors_have_the_one_shape(world: World) -> None:
    headers = world.headers("acme", "viewer")
    cases = [
        (world.client.get("/nowhere"), 404, "not_found"),
        (world.client.delete("/api/v1/runs", headers=headers), 405, "method_not_allowed"),
        (world.client.get("/api/v1/runs/not-a-uuid", headers=headers), 422, "invalid"),
        (world.client.get("/api/v1/runs?limit=0", headers=headers), 422, "invalid"),
        (world.client.get("/api/v1/runs?cursor=garbage", headers=headers), 422, "invalid"),
        (
            world.client.post(
                "/api/v1/runs",
                content="{not json",
                headers={**world.headers("acme", "operator"), "content-type": "application/json"},
            ),
            422,
            "invalid",
        ),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
        assert set(response.json()["error"]) <= {"code", "message", "field", "details"}
    assert cases[2][0].json()["error"]["field"] == "run_id"
    assert cases[3][0].json()["error"]["field"] == "limit"


def test_tokens_are_stored_hashed_and_revocation_is_immediate(world: World) -> None:
    raw = world.tokens[("acme", "viewer")]
    with session_scope(world.settings.db_url) as s:
        hashes = set(s.scalars(select(ApiToken.token_hash)))
        assert hashlib.sha256(raw.encode()).hexdigest() in hashes
        assert raw not in hashes
    headers = world.headers("acme", "viewer")
    assert world.client.get("/api/v1/runs", headers=headers).status_code == 200
    with session_scope(world.settings.db_url) as s:
        token = s.scalar(
            select(ApiToken).where(ApiToken.token_hash == hashlib.sha256(raw.encode()).hexdigest())
        )
        assert token is not None and token.last_used_at is not None
        token.revoked_at = token.last_used_at
    response = world.client.get("/api/v1/runs", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    bogus = world.client.get("/api/v1/runs", headers={"Authorization": "Bearer bt_nope"})
    assert bogus.status_code == 401
    basic = world.client.get("/api/v1/runs", headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401


def test_launch_and_decide_are_rate_limited_per_token(tmp_path: Path, sqlite_db: str) -> None:
    world = build_world(tmp_path, sqlite_db, launch_per_minute=2, decide_per_minute=1)
    try:
        body = {"orchestration": "acme-greet", "inputs": {"name": "Ada"}}
        for _ in range(2):
            ok = world.client.post(
                "/api/v1/runs", json=body, headers=world.headers("acme", "admin")
            )
            assert ok.status_code == 202
        limited = world.client.post(
            "/api/v1/runs", json=body, headers=world.headers("acme", "admin")
        )
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 30
        # Another token has its own bucket.
        other = world.client.post(
            "/api/v1/runs", json=body, headers=world.headers("acme", "operator")
        )
        assert other.status_code == 202
        first, second = world.waiting_run()[1], world.waiting_run()[1]
        headers = world.headers("acme", "approver")
        decide = {"decision": "abort"}
        url = "/api/v1/approvals/{}/decision"
        assert world.client.post(url.format(first), json=decide, headers=headers).status_code == 200
        again = world.client.post(url.format(second), json=decide, headers=headers)
        assert again.status_code == 429 and int(again.headers["retry-after"]) >= 1
    finally:
        world.client.__exit__(None, None, None)


def test_readyz_answers_503_when_dagster_is_unreachable(tmp_path: Path, sqlite_db: str) -> None:
    world = build_world(tmp_path, sqlite_db)
    try:
        assert world.client.get("/healthz").json() == {"status": "ok", "checks": {}}
        assert world.client.get("/readyz").status_code == 200
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("")
        world.gateway.close()
        world.gateway.settings = world.settings.model_copy(
            update={"dagster": world.settings.dagster.model_copy(update={"home": blocker / "x"})}
        )
        response = world.client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
        assert "dagster" in response.json()["error"]["message"]
    finally:
        world.client.__exit__(None, None, None)


def test_tokens_cli_creates_lists_and_revokes(
    isolated_settings: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from baton.cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    # The installed entry point once; the rest in-process (the same main, 2 s less a call).
    baton = str(Path(sys.executable).with_name("baton"))
    added = subprocess.run(
        [baton, "users", "add", "ann", "--org", "acme"], capture_output=True, text=True, timeout=120
    )
    assert added.returncode == 0, added.stderr
    code, out, err = run("tokens", "create", "--user", "ann", "--org", "acme", "--role", "approver")
    assert code == 0, err
    raw = out.splitlines()[0]
    assert raw.startswith("bt_") and len(raw) > 40
    assert out == raw + "\n", "stdout holds the token alone: TOKEN=$(baton tokens create ...)"
    assert "shown only now" in err and raw not in err
    code, listed, _ = run("tokens", "list", "--json")
    assert raw not in listed and raw[:8] in listed and '"live"' not in listed
    assert run("tokens", "revoke", "1")[0] == 0
    assert run("tokens", "revoke", "1")[0] == 1
    code, _, err = run("tokens", "create", "--user", "bob", "--role", "viewer")
    assert code == 1 and "baton users add bob" in err
    assert run("tokens", "create", "--user", "ann", "--org", "acme", "--role", "root")[0] == 2
