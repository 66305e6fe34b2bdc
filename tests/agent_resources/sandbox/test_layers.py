"""Which layers must hold: a system missing one refuses function agents unless the operator
allows weak sandboxes, and each remaining layer still holds its class on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent_resources.sandbox.layers import LAYERS, REQUIRED, SandboxPolicy, missing, refusal
from baton.settings import get_settings
from tests.agent_resources.sandbox.attacks import (
    FILE_ATTACKS,
    HARNESS,
    NETWORK_ATTACKS,
    Listener,
    assert_no_secret,
    attempt,
)
from tests.fakes.http import FakeServer

TRIVIAL = "def run(input, ctx):\n    return 'ran'\n"


def pretend(monkeypatch: pytest.MonkeyPatch, missing_layers: str, allow_weak: bool) -> None:
    monkeypatch.setenv("BATON_SANDBOX__UNAVAILABLE", missing_layers)
    monkeypatch.setenv("BATON_SANDBOX__ALLOW_WEAK", "true" if allow_weak else "false")
    get_settings.cache_clear()


def test_every_layer_holds_here() -> None:
    result, text = attempt(TRIVIAL, {})
    assert result is not None, text
    held = result.usage["sandbox"]
    assert {name: held[name] for name in LAYERS} == dict.fromkeys(LAYERS, True)
    assert held["landlock_abi"] >= 1 and held["no_new_privs"] and held["undumpable"]


@pytest.mark.parametrize("layer", sorted(REQUIRED))
def test_a_missing_required_layer_refuses_the_agent(
    monkeypatch: pytest.MonkeyPatch, layer: str
) -> None:
    pretend(monkeypatch, layer, allow_weak=False)
    result, text = attempt(TRIVIAL, {})
    assert result is None
    assert text.startswith("sandbox: ")
    assert f"cannot enforce the sandbox layer(s) {layer}" in text
    assert "BATON_SANDBOX__ALLOW_WEAK=true" in text


def test_the_refusal_happens_before_the_code_runs(
    monkeypatch: pytest.MonkeyPatch, server: FakeServer
) -> None:
    pretend(monkeypatch, "landlock,seccomp", allow_weak=False)
    code = "def run(input, ctx):\n    ctx.http.get(input['url'])\n"
    result, text = attempt(code, {"url": server.url + "/"}, hosts=["127.0.0.1"])
    assert result is None and "landlock, seccomp" in text
    assert server.requests == []


def test_allow_weak_runs_with_the_layers_that_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    pretend(monkeypatch, "landlock", allow_weak=True)
    result, text = attempt(TRIVIAL, {})
    assert result is not None and result.output == "ran", text
    assert result.usage["sandbox"]["landlock"] is False
    assert result.usage["sandbox"]["seccomp"] is True


def test_an_unknown_layer_name_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pretend(monkeypatch, "landlok", allow_weak=True)
    result, text = attempt(TRIVIAL, {})
    assert result is None and text.startswith("config: ")
    assert "unknown sandbox layer(s) landlok" in text


@pytest.mark.parametrize("layer", ["seccomp", "landlock", "net_ns"])
def test_without_one_layer_the_others_still_keep_the_network_off(
    monkeypatch: pytest.MonkeyPatch, server: FakeServer, layer: str
) -> None:
    pretend(monkeypatch, layer, allow_weak=True)
    target = Listener()
    try:
        data = {"tcp": target.tcp_port, "udp": target.udp_port, "http": server.url + "/"}
        result, text = attempt(NETWORK_ATTACKS + HARNESS, data)
        assert result is not None, text
        # The local TCP listener and HTTP server are what matter: nothing may arrive.
        assert target.arrived == []
        assert server.requests == []
    finally:
        target.close()


def test_without_seccomp_landlock_still_keeps_the_files(
    monkeypatch: pytest.MonkeyPatch, worker_secrets: dict[str, Any]
) -> None:
    pretend(monkeypatch, "seccomp", allow_weak=True)
    result, text = attempt(FILE_ATTACKS + HARNESS, worker_secrets)
    assert result is not None, text
    for name in ("read_each", "list_each", "write", "parent_fds", "parent_fd_open"):
        assert result.output[name].startswith("refused"), result.output[name]
    assert not Path(worker_secrets["write"]).exists()
    assert_no_secret(text)


def test_the_policy_names_what_is_missing() -> None:
    assert missing({"user_ns": True, "net_ns": True, "landlock": False}) == ["landlock", "seccomp"]
    assert "landlock, seccomp" in refusal(["landlock", "seccomp"])
    with pytest.raises(ValueError, match="unknown sandbox layer"):
        SandboxPolicy.of(False, ["bogus"])
    assert SandboxPolicy.of(True, [" seccomp ", ""]).unavailable == frozenset({"seccomp"})
