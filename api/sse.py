"""Server-Sent Events from a job's event stream in Redis.

Order of a connection: ``state`` (the job record now, for clients that connect late), then every
event after it in stream order (``id:`` is the stream id, so a reconnecting client resumes with
``Last-Event-ID``), then ``end`` once the job reached a final status. Two other endings, both
without an ``id:`` (the client's cursor stays on the last event it got), after which the client
reconnects with ``Last-Event-ID``: ``shutdown`` when the server is stopping (within one read,
``BLOCK_MS``) and ``error`` when Redis is unavailable (instead of a response cut mid-chunk).

The stream is read with short blocking reads in threads from a limiter of their own, so live
streams never take the threads that ordinary sync routes need, and a closed connection frees its
thread within a second.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import anyio
import redis
from anyio import to_thread

from api.json_response import dumps
from api.schemas.jobs import FINAL_STATUSES

BLOCK_MS = 1000
KEEPALIVE_SECONDS = 15.0
MAX_STREAM_THREADS = 64
_limiter: anyio.CapacityLimiter | None = None


async def _call(function, *args, **kwargs):
    """Run a blocking store call in the SSE thread pool."""
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(MAX_STREAM_THREADS)
    return await to_thread.run_sync(lambda: function(*args, **kwargs), limiter=_limiter)


def sse(event: str, data: dict, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {dumps(data).decode()}\n\n"


async def _drain(store, job_id: str, cursor: str) -> tuple[list, str]:
    """Everything already in the stream after ``cursor`` (no waiting)."""
    collected = []
    while True:
        batch = await _call(store.events, job_id, last_id=cursor, block_ms=None)
        if not batch:
            return collected, cursor
        collected.extend(batch)
        cursor = batch[-1][0]


def _is_final(event: dict) -> bool:
    return event.get("type", "status") == "status" and event.get("status") in FINAL_STATUSES


async def job_event_stream(
    store,
    job_id: str,
    last_event_id: str | None,
    view: Callable[[dict], dict],
    stop: Callable[[], bool] = lambda: False,
) -> AsyncIterator[str]:
    """The SSE text of one connection; ends early with ``shutdown`` once ``stop()`` is true,
    or with ``error`` when Redis fails."""
    async for chunk in ending_cleanly(_events(store, job_id, last_event_id, view, stop)):
        yield chunk


async def ending_cleanly(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    """``chunks``, then an ``error`` event (no ``id:``) if Redis fails, instead of a response cut
    mid-chunk: every event stream of the API ends this way."""
    try:
        async for chunk in chunks:
            yield chunk
    except redis.RedisError as error:
        detail = f"redis: unavailable ({type(error).__name__}); reconnect with Last-Event-ID"
        yield sse("error", {"detail": detail})


def shutdown_event() -> str:
    """The last event of a stream the stopping server closes (no ``id:``: the cursor stays)."""
    return sse("shutdown", {"detail": "server shutting down; reconnect with Last-Event-ID"})


async def _events(store, job_id, last_event_id, view, stop) -> AsyncIterator[str]:
    if last_event_id:
        cursor = last_event_id
    else:
        _, cursor = await _drain(store, job_id, "0")
        record = await _call(store.get, job_id) or {}
        yield sse("state", view(record) if record else {"id": job_id}, cursor)
        if record.get("status") in FINAL_STATUSES:
            yield sse("end", {"status": record["status"]})
            return
    last_write = time.monotonic()
    while True:
        if stop():
            yield shutdown_event()
            return
        batch = await _call(store.events, job_id, last_id=cursor, block_ms=BLOCK_MS)
        for event_id, event in batch:
            cursor = event_id
            yield sse(str(event.get("type", "message")), event, event_id)
            last_write = time.monotonic()
            if _is_final(event):
                yield sse("end", {"status": event["status"]})
                return
        if batch:
            continue
        record = await _call(store.get, job_id) or {}
        if record.get("status") in FINAL_STATUSES or not record:
            # the final event may have been trimmed from the stream: flush what is left, end
            rest, cursor = await _drain(store, job_id, cursor)
            for event_id, event in rest:
                yield sse(str(event.get("type", "message")), event, event_id)
            yield sse("end", {"status": record.get("status", "unknown")})
            return
        if time.monotonic() - last_write > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_write = time.monotonic()
