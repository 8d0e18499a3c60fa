"""Per-job log lines: what each shard says about one job, kept apart from the host's logs.

Redis stream ``gradq:job:{id}:logs`` (at most ``LOGS_MAXLEN`` lines, oldest dropped); each entry
is ``{"time": ISO 8601 UTC, "shard": int | None, "level": "info"|"warning"|"error", "message"}``
(``shard`` is None for lines about the whole job, e.g. from the recovery sweep). Lines are also
sent to the process's own logger, so host logs keep everything.
"""

from __future__ import annotations

import json
import logging

import redis as redis_lib

from worker.jobs import utc_now

LOGS_MAXLEN = 5000
LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
log = logging.getLogger("gradq.job")


def logs_key(job_id: str) -> str:
    return f"gradq:job:{job_id}:logs"


def job_log(
    redis: redis_lib.Redis, job_id: str, message: str, shard: int | None = None, level="info"
) -> None:
    """Append one line to the job's log (never raises: a log line must not fail a job)."""
    log.log(LEVELS[level], "job %s shard %s: %s", job_id, shard, message)
    try:
        queue_log_line(redis, job_id, message, shard, level)
    except redis_lib.RedisError as error:
        log.warning("job %s: log line not stored (%s)", job_id, error)


def queue_log_line(target, job_id: str, message: str, shard: int | None, level: str) -> None:
    """Append the line on ``target`` (a client, or a pipeline that commits it with others)."""
    line = {"time": utc_now(), "shard": shard, "level": level, "message": message}
    target.xadd(logs_key(job_id), {"data": json.dumps(line)}, maxlen=LOGS_MAXLEN)


def read_logs(
    redis: redis_lib.Redis,
    job_id: str,
    after: str = "0",
    count: int = 100,
    block_ms: int | None = None,
) -> list[dict]:
    """Lines after stream id ``after`` (``"0"``: from the start), oldest first, each with its
    ``id`` (the cursor of the next page); waits up to ``block_ms`` when there are none."""
    reply = redis.xread({logs_key(job_id): after}, count=count, block=block_ms)
    lines = []
    for _stream, entries in reply or []:
        for entry_id, fields in entries:
            lines.append({"id": entry_id.decode(), **json.loads(fields[b"data"])})
    return lines
