"""Following an event stream through API restarts: reconnect with ``Last-Event-ID``, with backoff,
for a bounded time.

The API ends a stream with ``shutdown`` when it stops (``gradq up`` restarted, the supervisor
restarting its API child) and with ``error`` when it lost Redis; a killed API just drops the
connection. The job goes on in the workers either way, so ``submit --wait``, ``watch``,
``logs -f`` and ``study create --wait`` wait for the API to come back rather than give up on the
first refused connection: one line when an outage starts, then quiet retries (0.5 s doubling to
5 s) for up to ``budget`` seconds, then ``ApiGoneError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TypeVar

from api.client import ApiError, ApiUnreachableError, SseEvent

T = TypeVar("T")
FIRST_DELAY, MAX_DELAY = 0.5, 5.0
# Answers a proxy or a restarting server gives while the API is away: retried like no answer.
TRANSIENT_STATUSES = (502, 503, 504)
OpenStream = Callable[[str | None], AbstractContextManager[Iterator[SseEvent]]]


class ApiGoneError(RuntimeError):
    """The API did not come back within the budget; the message says for how long and why."""


def transient(error: ApiError) -> bool:
    """True for a failure a restart explains (no answer, a gateway error), not a refusal."""
    return isinstance(error, ApiUnreachableError) or error.status in TRANSIENT_STATUSES


def _what(error: ApiError) -> str:
    return "API went away" if isinstance(error, ApiUnreachableError) else "API unavailable"


class Reconnecting:
    """Retries calls and streams across outages of the API; ``say`` prints one status line.

    An outage starts at the first failure and ends at the first request the API answers; each
    outage may last ``budget`` seconds.
    """

    def __init__(
        self,
        say: Callable[[str], None],
        budget: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._say, self.budget, self._sleep, self._clock = say, budget, sleep, clock
        self._outage_started: float | None = None
        self._delay = FIRST_DELAY

    def call(self, request: Callable[[], T]) -> T:
        """``request()``, retried while the API is away; ApiError for a refusal."""
        while True:
            try:
                answer = request()
            except ApiError as error:
                if not transient(error):
                    raise
                self._wait(_what(error), str(error))
                continue
            self._recovered()
            return answer

    def events(self, open_stream: OpenStream) -> Iterator[tuple[str, dict]]:
        """``(name, data)`` of every event of the stream ``open_stream(last_event_id)`` opens,
        through reconnections, up to and including ``end``; each event once."""
        last_id = None
        while True:
            try:
                with open_stream(last_id) as stream:
                    self._recovered()
                    cause = None
                    for event in stream:
                        if event.name in ("shutdown", "error"):
                            cause = event
                            break
                        last_id = event.id or last_id
                        yield event.name, event.data
                        if event.name == "end":
                            return
            except ApiError as error:
                if not transient(error):
                    raise
                self._wait(_what(error), str(error))
                continue
            if cause is not None and cause.name == "error":
                self._wait("API lost its Redis", cause.data.get("detail", ""))
            else:  # a shutdown event, or a stream closed before its end
                detail = cause.data.get("detail", "") if cause else "stream closed early"
                self._wait("API went away", detail)

    def _recovered(self) -> None:
        if self._outage_started is not None:
            self._say("reconnected")
        self._outage_started, self._delay = None, FIRST_DELAY

    def _wait(self, what: str, detail: str) -> None:
        now = self._clock()
        if self._outage_started is None:
            self._outage_started = now
            self._say(f"{what}; reconnecting (for up to {self.budget:g} s)...")
        waited = now - self._outage_started
        if waited >= self.budget:
            raise ApiGoneError(f"the API did not come back in {self.budget:g} s (last: {detail})")
        self._sleep(min(self._delay, self.budget - waited))
        self._delay = min(self._delay * 2, MAX_DELAY)
