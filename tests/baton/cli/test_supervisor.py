"""`baton up`'s supervision loop on plain Python children: restart with backoff, give up
non-zero on a crash loop, stop everything on SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from baton.cli.supervisor import Child, RestartPolicy, supervise

QUICK = RestartPolicy(first=0.1, longest=0.4, max_crashes=3, window=60)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _recording(pidfile: Path, then: str) -> Child:
    """A child that appends its pid to ``pidfile`` and then runs ``then``."""
    code = f"import os, sys, time; open({str(pidfile)!r}, 'a').write(f'{{os.getpid()}}\\n'); {then}"
    return Child(pidfile.stem, [sys.executable, "-c", code])


def _pids(pidfile: Path) -> list[int]:
    return [int(x) for x in pidfile.read_text().split()] if pidfile.exists() else []


def _sigterm_when(condition: object) -> threading.Thread:
    def watch() -> None:
        while not condition():  # type: ignore[operator]
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_policy_doubles_up_to_the_longest() -> None:
    policy = RestartPolicy(first=1, longest=30)
    assert [policy.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_crashed_child_is_restarted_and_the_others_keep_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The first incarnation crashes with 3, the second stays up.
    flaky = _recording(
        tmp_path / "flaky",
        f"sys.exit(3) if len(open({str(tmp_path / 'flaky')!r}).read().split()) < 2 "
        "else time.sleep(60)",
    )
    steady = _recording(tmp_path / "steady", "time.sleep(60)")
    _sigterm_when(lambda: len(_pids(tmp_path / "flaky")) == 2)
    assert supervise([flaky, steady], cwd=tmp_path, grace=5, policy=QUICK) == 0
    assert len(_pids(tmp_path / "steady")) == 1  # never restarted: untouched by the crash
    assert all(_gone(pid) for pid in _pids(tmp_path / "flaky") + _pids(tmp_path / "steady"))
    err = capsys.readouterr().err
    assert "flaky exited (3); restarting in 0.1 s" in err
    assert "restarting flaky" in err


def test_a_child_that_keeps_crashing_makes_supervise_exit_non_zero(tmp_path: Path) -> None:
    crasher = _recording(tmp_path / "crasher", "sys.exit(4)")
    steady = _recording(tmp_path / "steady", "time.sleep(60)")
    assert supervise([crasher, steady], cwd=tmp_path, grace=5, policy=QUICK) == 4
    assert len(_pids(tmp_path / "crasher")) == QUICK.max_crashes
    assert _gone(_pids(tmp_path / "steady")[0])


def test_a_child_that_keeps_exiting_0_is_still_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quitter = _recording(tmp_path / "quitter", "sys.exit(0)")
    assert supervise([quitter], cwd=tmp_path, grace=5, policy=QUICK) == 1
    assert "giving up and stopping all" in capsys.readouterr().err


def test_sigterm_stops_every_child_runs_on_stop_and_returns_0(tmp_path: Path) -> None:
    children = [_recording(tmp_path / name, "time.sleep(60)") for name in ("a", "b")]
    stopped: list[bool] = []
    _sigterm_when(lambda: _pids(tmp_path / "a") and _pids(tmp_path / "b"))
    previous = signal.getsignal(signal.SIGTERM)
    code = supervise(children, cwd=tmp_path, grace=5, on_stop=lambda: stopped.append(True))
    assert code == 0
    assert stopped == [True]
    assert _gone(_pids(tmp_path / "a")[0]) and _gone(_pids(tmp_path / "b")[0])
    assert signal.getsignal(signal.SIGTERM) is previous


def test_what_a_crashed_child_left_in_its_group_goes_when_supervise_stops(
    tmp_path: Path,
) -> None:
    # The first incarnation starts a grandchild (like a code server) and crashes; the
    # grandchild is left running until the deployment stops, then killed.
    spawn_then_crash = (
        "import subprocess; "
        f"n = len(open({str(tmp_path / 'parent')!r}).read().split()); "
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']) "
        "if n == 1 else None; "
        f"g and open({str(tmp_path / 'grandchild')!r}, 'w').write(str(g.pid)); "
        "sys.exit(5) if n == 1 else time.sleep(60)"
    )
    parent = _recording(tmp_path / "parent", spawn_then_crash)
    grandchild = tmp_path / "grandchild"
    _sigterm_when(lambda: len(_pids(tmp_path / "parent")) == 2 and grandchild.exists())
    assert supervise([parent], cwd=tmp_path, grace=5, policy=QUICK) == 0
    pid = int(grandchild.read_text())
    deadline = time.monotonic() + 5  # the kernel reaps it through init: give it a moment
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)


def test_a_child_that_cannot_start_does_not_leave_the_others_running(tmp_path: Path) -> None:
    steady = _recording(tmp_path / "steady", "time.sleep(60)")
    missing = Child("missing", [str(tmp_path / "no-such-program")])
    with pytest.raises(FileNotFoundError):
        supervise([steady, missing], cwd=tmp_path, grace=5, policy=QUICK)
    # The steady child may be stopped before it wrote its pid: look for its command line.
    assert not _running_with(str(tmp_path / "steady"))


def _running_with(marker: str) -> list[int]:
    """Pids of live processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if entry.name.isdigit() and marker in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found
