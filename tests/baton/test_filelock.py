"""The file lock: one holder at a time, the next one enters only after the first leaves."""

from __future__ import annotations

import threading
from pathlib import Path

from baton.filelock import file_lock


def test_a_second_holder_waits_for_the_first(tmp_path: Path) -> None:
    lock = tmp_path / "deep" / "first-start.lock"
    order: list[str] = []
    entered = threading.Event()

    def second() -> None:
        entered.set()
        # A new open file description per call: flock excludes it even in the same process.
        with file_lock(lock, purpose="the test"):
            order.append("second in")

    with file_lock(lock, purpose="the test"):
        order.append("first in")
        thread = threading.Thread(target=second)
        thread.start()
        entered.wait()
        order.append("first out")
    thread.join(timeout=30)
    assert order == ["first in", "first out", "second in"]
    assert lock.exists()  # its folder was created


def test_the_lock_is_released_when_the_block_raises(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    try:
        with file_lock(lock, purpose="the test"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with file_lock(lock, purpose="the test"):
        pass  # would block forever if the first holder had kept it
