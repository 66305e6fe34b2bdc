"""`baton up`'s supervision loop: restart a crashed child with backoff, or give up non-zero."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

POLL_SECONDS = 0.3


@dataclass(frozen=True)
class Child:
    """One supervised command, named for the log lines."""

    name: str
    argv: list[str]


@dataclass(frozen=True)
class RestartPolicy:
    """Backoff doubles from ``first`` up to ``longest``; ``max_crashes`` in ``window`` gives up."""

    first: float = 1.0
    longest: float = 30.0
    max_crashes: int = 5
    window: float = 60.0

    def delay(self, recent_crashes: int) -> float:
        return min(self.first * 2 ** max(0, recent_crashes - 1), self.longest)


@dataclass
class _Slot:
    child: Child
    proc: subprocess.Popen[bytes] | None = None
    restart_at: float | None = None
    crashes: list[float] = field(default_factory=list)
    # Groups of earlier incarnations: what they left (a code server, a run worker) is let be
    # while the deployment runs, and killed when it stops.
    old_groups: list[int] = field(default_factory=list)


def _say(message: str) -> None:
    print(f"Baton: {message}", file=sys.stderr, flush=True)


def supervise(
    children: Sequence[Child],
    *,
    cwd: Path,
    grace: float = 20,
    policy: RestartPolicy | None = None,
    on_stop: Callable[[], None] | None = None,
) -> int:
    """Run ``children`` until told to stop; 0 then, non-zero if a child keeps crashing.

    A child that exits (whatever its code: a service is never meant to end) is started again
    after a backoff, the others untouched. ``policy.max_crashes`` exits of one child within
    ``policy.window`` seconds stop everything and return that child's last exit code (1 if it
    was 0). SIGINT or SIGTERM stops every child the way Ctrl-C does; whatever is left after
    ``grace`` seconds is killed with its own children. ``on_stop`` runs last (e.g. to stop a
    detached helper the children started).
    """
    policy = policy or RestartPolicy()
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    # Handlers first: a handled signal is reset to its default in a child, while an ignored
    # one (SIGINT of a background job) would stay ignored and the child could not be stopped.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    slots = [_Slot(child) for child in children]
    try:
        for slot in slots:
            _start(slot, cwd)
        code = 0
        while not stopping:
            code = _tend(slots, cwd, policy)
            if code:
                break
            time.sleep(POLL_SECONDS)
        return 0 if stopping else code
    finally:
        # Also when a start failed (a missing executable): what did start must not run on.
        _terminate([s.proc for s in slots if s.proc is not None], grace)
        for group in (g for s in slots for g in s.old_groups):
            _kill_group(group)
        if on_stop is not None:
            on_stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(slot: _Slot, cwd: Path) -> None:
    # Each child leads its own process group, so a stuck one can be killed with everything
    # it started (code servers, run workers) and nothing is orphaned.
    slot.proc = subprocess.Popen(slot.child.argv, cwd=cwd, start_new_session=True)
    slot.restart_at = None


def _tend(slots: Sequence[_Slot], cwd: Path, policy: RestartPolicy) -> int:
    """One pass: note exits, restart what is due; a non-zero code means give up."""
    now = time.monotonic()
    for slot in slots:
        if slot.restart_at is not None:
            if now >= slot.restart_at:
                _say(f"restarting {slot.child.name}")
                _start(slot, cwd)
            continue
        assert slot.proc is not None
        code = slot.proc.poll()
        if code is None:
            continue
        slot.old_groups.append(slot.proc.pid)
        slot.crashes = [t for t in slot.crashes if now - t < policy.window] + [now]
        if len(slot.crashes) >= policy.max_crashes:
            _say(
                f"{slot.child.name} exited ({code}) {len(slot.crashes)} times in "
                f"{policy.window:.0f} s; giving up and stopping all"
            )
            return code or 1
        delay = policy.delay(len(slot.crashes))
        _say(f"{slot.child.name} exited ({code}); restarting in {delay:g} s")
        slot.restart_at = now + delay
    return 0


def _kill_group(pgid: int) -> None:
    # The kernel does not hand out a pid still in use as a group id, so this hits only ours.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _terminate(procs: Sequence[subprocess.Popen[bytes]], grace: float) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # Whatever the child left behind in its group (a code server slow to notice) goes too.
        _kill_group(proc.pid)
