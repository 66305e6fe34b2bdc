"""`make demo` (scripts/demo.py) as a user runs it: a real `baton up`, real HTTP calls, real
child runs. It prints the overview, what was published and the run tree, and leaves nothing
running, also when interrupted with Ctrl-C (SIGINT) in the middle."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"
TREE_LINE = re.compile(r"^\s+(finance-manager|kpi-tracking) \w{8}  (\w+)", re.MULTILINE)


def _start() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
        start_new_session=True,
    )


def _data_dir(output: str) -> str:
    match = re.search(r"data in (\S+) \(log:", output)
    assert match, output
    return match.group(1)


def _ports(output: str) -> list[int]:
    [line] = [x for x in output.splitlines() if x.startswith("Starting baton up")]
    return [int(p) for p in re.findall(r"http://127\.0\.0\.1:(\d+)", line)]


def _processes_using(data_dir: str) -> list[int]:
    """Pids whose environment or command line names the demo's data folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if data_dir.encode() in blob:
            found.append(int(entry.name))
    return found


def _assert_all_stopped(output: str) -> None:
    data_dir = _data_dir(output)
    assert _processes_using(data_dir) == [], "a process of the demo's deployment is still running"
    assert not Path(data_dir).exists(), "the temporary data folder was left behind"
    for port in _ports(output):  # the Dagster UI and the API no longer listen
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"


def test_demo_prints_the_summary_and_the_tree_and_stops_everything() -> None:
    proc = _start()
    output, _ = proc.communicate(timeout=360)
    assert proc.returncode == 0, output
    assert re.search(r"finance-manager [0-9a-f-]{36}: completed", output), output
    assert "approved 2025-01 to 2025-03 with an edited summary" in output
    assert output.count(" as written (approval ") == 2
    assert "Summary across the periods" in output
    assert "3 rows; period: 2025-01 to 2025-03, 2025-04 to 2025-06, 2025-07 to 2025-09." in output
    assert "(edited by finance)" in output and "Figures final, reviewed by finance." in output
    assert "received 3 post(s)" in output
    for period in ("2025-01 to 2025-03", "2025-04 to 2025-06", "2025-07 to 2025-09"):
        assert f"finance-kpis {period} approved by fiona" in output
    nodes = TREE_LINE.findall(output)
    assert nodes == [("finance-manager", "completed")] + [("kpi-tracking", "completed")] * 3
    segments = re.findall(r"segment \w{8}  (\w+)", output)
    assert len(segments) == 8 and set(segments) == {"SUCCESS"}  # two segments per run
    assert "Stopped: webserver, daemon, API and code servers." in output
    _assert_all_stopped(output)


def test_ctrl_c_in_the_middle_stops_everything_it_started() -> None:
    proc = _start()
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 240
    for line in proc.stdout:  # read until the run is launched, then interrupt
        seen.append(line)
        if line.startswith("Launched finance-manager") or time.monotonic() > deadline:
            break
    assert any(s.startswith("Launched finance-manager") for s in seen), "".join(seen)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
    rest, _ = proc.communicate(timeout=120)
    output = "".join(seen) + rest
    assert proc.returncode == 130, output
    assert "interrupted" in output and "Stopped: webserver, daemon, API" in output
    _assert_all_stopped(output)
