"""Knowing that the server is shutting down, so long-lived responses (SSE) can end on their own.

uvicorn stops accepting connections on SIGTERM/SIGINT but then waits for every open response, and
an event stream of a running job never ends by itself. ``ShutdownFlag.install`` chains a handler in
front of uvicorn's: it raises the flag, then lets uvicorn handle the signal as before. Streams see
the flag within a read (``api.sse``) and close; clients reconnect with ``Last-Event-ID``.
Installed only from the main thread (where signal handlers live); elsewhere (tests' TestClient)
the flag simply never rises.
"""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ShutdownFlag:
    """A threading.Event raised by the first SIGTERM/SIGINT the process receives."""

    def __init__(self):
        self.event = threading.Event()
        self._previous: dict[int, object] = {}

    def is_set(self) -> bool:
        return self.event.is_set()

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._handle:
                signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, sig: int, frame) -> None:
        self.event.set()
        previous = self._previous.get(sig)
        if callable(previous):
            previous(sig, frame)  # uvicorn's handle_exit: the usual graceful shutdown
        elif previous in (signal.SIG_DFL, None):
            self.uninstall()
            signal.raise_signal(sig)
