"""Landlock on its own (no other layer): reading beneath the given roots only, no writes even
there, no TCP."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent_resources.sandbox import _landlock

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or _landlock.abi() < 1, reason="needs a kernel with Landlock"
)
ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import errno, os, socket, sys
sys.path.append({root!r})
from agent_resources.sandbox import _landlock
assert _landlock.restrict([{allowed!r}, os.path.dirname(os.__file__)]) >= 1
def outcome(call):
    try:
        call()
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
print(outcome(lambda: open({inside!r}).read()))
print(outcome(lambda: os.listdir({allowed!r})))
print(outcome(lambda: open({outside!r}).read()))
print(outcome(lambda: os.listdir({outside_dir!r})))
print(outcome(lambda: open({inside!r}, "a")))
print(outcome(lambda: open({allowed!r} + "/new", "w")))
print(outcome(lambda: os.unlink({inside!r})))
print(outcome(lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2)))
"""


def test_reads_beneath_the_roots_only_and_nothing_else(tmp_path: Path) -> None:
    allowed, elsewhere = tmp_path / "allowed", tmp_path / "elsewhere"
    allowed.mkdir()
    elsewhere.mkdir()
    (allowed / "file.txt").write_text("yes")
    (elsewhere / "secret.key").write_text("no")
    server = socket.create_server(("127.0.0.1", 0))
    code = PROBE.format(
        root=str(ROOT),
        allowed=str(allowed),
        inside=str(allowed / "file.txt"),
        outside=str(elsewhere / "secret.key"),
        outside_dir=str(elsewhere),
        port=server.getsockname()[1],
    )
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    tcp = "EACCES" if _landlock.abi() >= 4 else "ok"
    expected = ["ok", "ok", "EACCES", "EACCES", "EACCES", "EACCES", "EACCES", tcp]
    assert done.stdout.split() == expected
    assert (allowed / "file.txt").read_text() == "yes" and not (allowed / "new").exists()
