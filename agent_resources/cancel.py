"""Telling a running agent call to stop: callbacks that close its client or kill its process."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Cancellation:
    """Set once; every callback registered before or after runs exactly once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self._set = False
        self._event = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._set

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless cancelled first; True when cancelled."""
        return self._event.wait(max(seconds, 0.0))

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when cancelled (at once if already cancelled)."""
        with self._lock:
            if not self._set:
                self._callbacks.append(callback)
                return
        callback()

    def cancel(self) -> None:
        """Stop the call: run the callbacks (a failing one does not keep the others back)."""
        with self._lock:
            if self._set:
                return
            self._set = True
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                continue
