"""`baton up`'s supervisor: a child that exits takes the others down; SIGTERM stops all."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from baton.cli.up import supervise

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_child_that_exits_stops_the_others(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    sleeper = [
        sys.executable,
        "-c",
        f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)",
    ]
    started = time.monotonic()
    code = supervise(
        [[sys.executable, "-c", "import time, sys; time.sleep(1); sys.exit(3)"], sleeper],
        cwd=tmp_path,
        grace=5,
    )
    assert code == 3
    assert time.monotonic() - started < 10
    assert _gone(int(pidfile.read_text()))


def test_sigterm_stops_every_child_and_returns_0(tmp_path: Path) -> None:
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.start()
    started = time.monotonic()
    assert supervise([SLEEPER, SLEEPER], cwd=tmp_path, grace=5) == 0
    assert time.monotonic() - started < 10
    # The previous handler is back.
    assert signal.getsignal(signal.SIGTERM) is not None
