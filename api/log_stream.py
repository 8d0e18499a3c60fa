"""``GET /v1/jobs/{id}/logs?follow=true``: the job's log lines as Server-Sent Events.

Every line already written, then new ones as shards write them (``log`` events whose ``id:`` is
the cursor), then ``end`` once the job has finished and no line is left. Like the job's event
stream (``api.sse``) it ends early with ``shutdown`` when the server stops and ``error`` when
Redis fails; the client follows on with the last ``id:`` it got as its cursor.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

from api.schemas.jobs import FINAL_STATUSES
from api.sse import BLOCK_MS, KEEPALIVE_SECONDS, _call, ending_cleanly, shutdown_event, sse
from worker.job_logs import read_logs


def job_log_stream(
    store, job_id: str, cursor: str, stop: Callable[[], bool] = lambda: False
) -> AsyncIterator[str]:
    """The SSE text of one ``follow`` connection from ``cursor`` on."""
    return ending_cleanly(_log_events(store, job_id, cursor, stop))


async def _log_events(store, job_id: str, cursor: str, stop) -> AsyncIterator[str]:
    last_write = time.monotonic()
    while True:
        if stop():
            yield shutdown_event()
            return
        lines = await _call(read_logs, store.redis, job_id, cursor, 100, BLOCK_MS)
        for line in lines:
            cursor = line["id"]
            yield sse("log", line, cursor)
            last_write = time.monotonic()
        if lines:
            continue
        record = await _call(store.get, job_id) or {}
        if not record or record.get("status") in FINAL_STATUSES:
            # lines written between the read and the status check
            for line in await _call(read_logs, store.redis, job_id, cursor, 1000):
                yield sse("log", line, line["id"])
            yield sse("end", {"status": record.get("status", "deleted")})
            return
        if time.monotonic() - last_write > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_write = time.monotonic()
