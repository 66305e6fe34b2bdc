"""`baton up` refuses ports it cannot listen on before starting anything (a child that cannot
bind would otherwise fail on every restart of the supervisor)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from baton.cli.main import main
from tests.e2e.deploy import free_port


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_taken_ui_port_is_refused_with_what_to_do(
    taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["up", "--port", str(taken_port), "--api-port", str(free_port())]) == 1
    err = capsys.readouterr().err
    assert f"the Dagster UI cannot listen on 127.0.0.1:{taken_port}" in err
    assert "baton up --port P --api-port Q" in err


def test_a_taken_api_port_and_one_port_for_both_are_refused(
    taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["up", "--port", str(free_port()), "--api-port", str(taken_port)]) == 1
    assert f"the API cannot listen on 127.0.0.1:{taken_port}" in capsys.readouterr().err
    port = free_port()
    assert main(["up", "--port", str(port), "--api-port", str(port)]) == 1
    assert "both given port" in capsys.readouterr().err
