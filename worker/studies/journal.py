"""Optuna's journal in one Redis list per study, on gradq's own Redis client.

Optuna's ``JournalRedisBackend`` would do the same job, but it opens its own connection from a
URL, reads the log one ``GET`` per entry (a study's replay costs thousands of round trips), and
as a ``BaseJournalSnapshot`` it stores and *unpickles* snapshots from Redis. A list gives atomic
appends (``RPUSH``), reads from any position in one ``LRANGE``, and nothing is ever unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import redis as redis_lib
from optuna.storages.journal import BaseJournalBackend


class RedisListJournal(BaseJournalBackend):
    """Journal entries as JSON strings in the Redis list ``key``, oldest first."""

    def __init__(self, redis: redis_lib.Redis, key: str):
        self.redis, self.key = redis, key

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        for raw in self.redis.lrange(self.key, log_number_from, -1):
            yield json.loads(raw)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if logs:
            self.redis.rpush(self.key, *(json.dumps(log) for log in logs))
