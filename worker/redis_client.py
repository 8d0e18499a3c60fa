"""Redis clients that ride out a Redis restart: retries with exponential backoff, health checks.

A restarted redis-server (same port, append-only file) is down for seconds. A client built here
retries a command on connection errors and timeouts (reconnecting each time) for about
``outage_seconds`` before it raises, and pings an idle connection before reusing it, so a
connection cut by the restart is replaced instead of failing the next command.

Retrying may run a write twice when the connection dropped after Redis executed it but before the
reply arrived; gradq's writes are idempotent (SET, SADD, HSET) or harmless twice (one duplicated
progress event). WATCH transactions are never replayed: redis-py raises WatchError, and
``worker.json_update.update_json`` starts its transaction again.
"""

from __future__ import annotations

import redis as redis_lib
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

BACKOFF_BASE_SECONDS = 0.1
BACKOFF_CAP_SECONDS = 2.0
HEALTH_CHECK_SECONDS = 10
# the worker's budget: a 10 s restart plus the append-only file's replay, with room to spare
WORKER_OUTAGE_SECONDS = 60.0
# Socket timeouts of every worker client: with Redis unreachable (its host's link down) a call must
# fail in seconds, not after TCP's retransmission backoff (which, after a 10 s cut, delivers a
# blocked request up to ~15 s after the link is back). 5 s per read is far above a BLPOP slice
# (0.25 s) or a vector's read.
WORKER_TIMEOUTS = {"socket_timeout": 5.0, "socket_connect_timeout": 2.0}


def retries_for(outage_seconds: float) -> int:
    """How many retries of capped exponential backoff (0.1, 0.2, ... 2, 2 s) span the outage."""
    waited, retries, delay = 0.0, 0, BACKOFF_BASE_SECONDS
    while waited < outage_seconds:
        waited += min(delay, BACKOFF_CAP_SECONDS)
        delay *= 2
        retries += 1
    return retries


def connect(url: str, outage_seconds: float = WORKER_OUTAGE_SECONDS, **kwargs) -> redis_lib.Redis:
    """A client on ``url`` that retries for ``outage_seconds`` (0: fail at once)."""
    retry = Retry(
        ExponentialBackoff(cap=BACKOFF_CAP_SECONDS, base=BACKOFF_BASE_SECONDS),
        retries_for(outage_seconds),
        supported_errors=(RedisConnectionError, RedisTimeoutError, ConnectionResetError),
    )
    kwargs.setdefault("health_check_interval", HEALTH_CHECK_SECONDS)
    kwargs.setdefault("socket_keepalive", True)
    return redis_lib.Redis.from_url(url, retry=retry, **kwargs)
