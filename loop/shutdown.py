"""Stopping a worker cleanly: SIGTERM/SIGINT checkpoint the running job and exit within seconds.

The worker's handler sets an event. A fine-tune stops at its next training step (``fit``
saves a checkpoint and the job becomes ``interrupted``; the next worker resumes it), a batch
prediction stops between images, an idle worker exits at once. A job that cannot stop in
``GRACE_S`` (a long preparation step, say) is marked interrupted by a watchdog, which then
ends the process: it restarts from its beginning. SIGKILL cannot be caught; the store's stale
job recovery handles it as before. ``loop.process.stop_worker`` sends the SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

GRACE_S = 12.0  # under the 15 s a service manager or a user waits before SIGKILL
EXIT_OVERDUE = 75  # EX_TEMPFAIL: stopped by the watchdog, the job resumes later


class Shutdown:
    """A stop request (signal or call) and the watchdog that enforces it."""

    def __init__(self, grace_s: float = GRACE_S,
                 on_overdue: Callable[[], None] | None = None) -> None:
        self.event = threading.Event()
        self.grace_s, self.on_overdue = grace_s, on_overdue
        self.reason: str | None = None
        self.requested_at: float | None = None
        self._watchdog: threading.Timer | None = None

    @property
    def requested(self) -> bool:
        """Whether the worker should stop."""
        return self.event.is_set()

    def request(self, reason: str, watchdog: bool = True) -> None:
        """Ask the worker to stop (idempotent); start the watchdog the first time."""
        if self.event.is_set():
            return
        self.reason, self.requested_at = reason, time.monotonic()
        self.event.set()
        if watchdog:
            self._watchdog = threading.Timer(self.grace_s, self._overdue)
            self._watchdog.daemon = True
            self._watchdog.start()

    def cancel_watchdog(self) -> None:
        """The worker stopped in time: no forced exit."""
        if self._watchdog is not None:
            self._watchdog.cancel()

    def _overdue(self) -> None:
        try:
            if self.on_overdue is not None:
                self.on_overdue()
        finally:
            print(f"shutdown ({self.reason}) took over {self.grace_s:.0f} s: exiting now",
                  flush=True)
            sys.stdout.flush()
            os._exit(EXIT_OVERDUE)

    @contextmanager
    def on_signals(self) -> Iterator[Shutdown]:
        """SIGTERM and SIGINT request the stop while inside (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return

        def handler(signum: int, frame: object) -> None:
            self.request(signal.Signals(signum).name)

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def sigterm_as_keyboard_interrupt() -> None:
    """Let SIGTERM end a blocking server loop as Ctrl-C does (the app's own shutdown)."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
