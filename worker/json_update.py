"""``update_json``: change one JSON document in Redis atomically, under optimistic locking.

Job, model and study records are each one JSON string. Changing one is WATCH / GET / compute /
MULTI / SET / EXEC; when another client writes the key between the GET and the EXEC, Redis
refuses the transaction (redis-py raises ``WatchError``) and the change is computed again from
the new value. The stores used to write that loop each; this is the one copy.
``watched_transaction`` is the loop itself, for writes that depend on what was read without
rewriting a document (``worker.fence`` checks the job record, then writes other keys).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import redis as redis_lib
from redis.client import Pipeline


def watched_transaction(redis: redis_lib.Redis, keys, plan) -> list | None:
    """One MULTI/EXEC whose writes depend on what it read, applied atomically.

    WATCH ``keys``; ``plan(pipe)`` reads them (``pipe`` is in immediate mode) and returns a
    function that queues the writes on ``pipe``, or None to write nothing (the result is then
    None). If a watched key changes before EXEC, Redis discards the writes and ``plan`` runs
    again on fresh reads. Returns EXEC's replies; a connection error propagates.
    """
    with redis.pipeline() as pipe:
        while True:
            try:
                if keys:
                    pipe.watch(*keys)
                queue = plan(pipe)
                if queue is None:
                    return None
                pipe.multi()
                queue(pipe)
                return pipe.execute()
            except redis_lib.WatchError:
                continue


def update_json(
    redis: redis_lib.Redis,
    key: str,
    change: Callable[[dict], dict | None],
    also: Callable[[Pipeline, dict], None] | None = None,
    missing: Exception | None = None,
    watch: tuple[str, ...] = (),
) -> dict | None:
    """Write ``change(document)`` back to ``key`` unless another writer got there first; retry.

    - ``change`` gets the freshly parsed document on every attempt and returns the document to
      write (that dict changed in place, or another), or None to write nothing. It may raise: the
      exception propagates and nothing is written. It runs again after each lost race, so it must
      not act outside the document (closures it fills are overwritten on the retry).
    - ``also(pipe, written)`` queues more commands (events, index updates) in the same MULTI,
      after the SET: they commit together with the document or not at all.
    - A missing key raises ``missing`` when given, else returns None; ``change`` is not called.
    - ``watch``: more keys whose change aborts the attempt too; ``change`` may read them (from
      any connection: they are watched before it runs) and decide on what it read.

    Returns the document written, or None (missing key, or ``change`` declined). Retries have no
    bound: each lost race means another writer committed, so the system as a whole progresses.
    A connection error propagates (a WATCH transaction is never replayed by the client).
    """
    written = None

    def plan(pipe):
        nonlocal written
        raw = pipe.get(key)
        if raw is None:
            if missing is not None:
                raise missing
            return None
        written = change(json.loads(raw))
        if written is None:
            return None

        def queue(pipe) -> None:
            pipe.set(key, json.dumps(written))
            if also is not None:
                also(pipe, written)

        return queue

    done = watched_transaction(redis, (key, *watch), plan)
    return written if done is not None else None
