"""The per-tenant active-job limit, checked and reserved in one atomic Redis step.

Counting a tenant's active jobs and then creating one is a race: 60 concurrent submissions
against a limit of 16 were all counted before any was created, and 39-42 got in. The Lua script
below counts and creates in one step that Redis runs alone. ``gradq:tenant:{t}:active`` indexes
the tenant's unfinished jobs; ids that left ``gradq:jobs:active`` (finished jobs, removed there
by ``JobStore.update``) are pruned from it as the script counts, so it needs no other upkeep.

Jobs queued before this index existed (and jobs resumed by that version) are in
``gradq:jobs:active`` but not in their tenant's index, so they would not count. The first limited
admission on a Redis without ``INDEXED_KEY`` adds every unfinished job to its tenant's index
(``index_active_jobs``), then sets the key; until then concurrent admissions each run it, which
is harmless: it only adds ids, and an id that finished meanwhile is pruned at the next count.

The same step checks that the job's uploaded data set still exists, so a set deleted between
the API's checks and the job's creation refuses the job instead of failing it later; deleting
watches ``gradq:jobs:active`` for the other order (``worker.datasets.in_use``).
"""

from __future__ import annotations

import json

import redis as redis_lib

from worker.datasets.store import dataset_key

ACTIVE_KEY = "gradq:jobs:active"  # every unfinished job, whatever its tenant (worker.jobs)
INDEXED_KEY = "gradq:admission:indexed"  # set once the tenant indexes hold every active job

# KEYS: record, tenant's job list (zset), all active ids, events stream, tenant's active ids,
#       and the metadata of the uploaded data set the job trains on, if it does
# ARGV: record JSON, zset member, job id, created-event JSON, events maxlen, limit (-1: none)
# returns -1 when the job was created, -2 when its data set is gone, else the number of active
# jobs that refused it
CREATE_WITHIN_LIMIT = """
if KEYS[6] and redis.call('EXISTS', KEYS[6]) == 0 then
  return -2
end
local limit = tonumber(ARGV[6])
if limit >= 0 then
  local active = 0
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[5])) do
    if redis.call('SISMEMBER', KEYS[3], id) == 1 then
      active = active + 1
    else
      redis.call('SREM', KEYS[5], id)
    end
  end
  if active >= limit then
    return active
  end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('SADD', KEYS[5], ARGV[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'data', ARGV[4])
return -1
"""


class ActiveJobLimitError(Exception):
    """The tenant already has ``limit`` queued, running or cancelling jobs (HTTP 429)."""

    def __init__(self, tenant: str, active: int, limit: int):
        super().__init__(
            f"tenant {tenant}: {active} queued or running jobs already (limit {limit})"
        )
        self.tenant, self.active, self.limit = tenant, active, limit


class DatasetGoneError(Exception):
    """The job's uploaded data set was deleted before it could be created (HTTP 422) or
    resumed (HTTP 409)."""

    def __init__(self, dataset_id: str):
        super().__init__(f"dataset.id: data set {dataset_id} not found")
        self.dataset_id = dataset_id


def tenant_active_key(tenant: str) -> str:
    return f"gradq:tenant:{tenant}:active"


def index_active_jobs(redis: redis_lib.Redis) -> int:
    """Add every unfinished job to its tenant's active index, then mark the indexes complete.

    Idempotent; returns how many ids were missing. Records that vanished are skipped (the
    recovery sweep drops their ids).
    """
    ids = sorted(member.decode() for member in redis.smembers(ACTIVE_KEY))
    added = 0
    for first in range(0, len(ids), 500):  # bounded round trips, bounded replies
        batch = ids[first : first + 500]
        raws = redis.mget([f"gradq:job:{job_id}" for job_id in batch])
        pipe = redis.pipeline(transaction=False)
        for job_id, raw in zip(batch, raws, strict=True):
            if raw is not None:
                pipe.sadd(tenant_active_key(json.loads(raw)["tenant"]), job_id)
        added += sum(pipe.execute())
    redis.set(INDEXED_KEY, 1)
    return added


def ensure_indexed(redis: redis_lib.Redis) -> None:
    """Index the jobs queued before the tenant indexes existed, once (see the module doc)."""
    if not redis.exists(INDEXED_KEY):
        index_active_jobs(redis)


def active_jobs(redis: redis_lib.Redis, tenant: str) -> int:
    """The tenant's unfinished jobs, counted as ``CREATE_WITHIN_LIMIT`` counts them: ids in its
    index that are still in ``gradq:jobs:active`` (finished ids are left for the script to prune).

    For a check made under WATCH of ``tenant_active_key(tenant)``, which every admission and
    resume of the tenant's jobs writes (``worker.job_lifecycle.reopen_job``)."""
    ids = list(redis.smembers(tenant_active_key(tenant)))
    return sum(redis.smismember(ACTIVE_KEY, ids)) if ids else 0


def create_within_limit(
    redis: redis_lib.Redis,
    keys: tuple[str, str, str, str],
    record: dict,
    member: str,
    event: dict,
    events_maxlen: int,
    limit: int | None,
) -> None:
    """Store a new job (``keys``: record, tenant zset, active set, events) unless the tenant
    is at ``limit`` active jobs (None: no limit; ActiveJobLimitError) or the uploaded data set
    of ``record["spec"]`` no longer exists (DatasetGoneError)."""
    tenant = record["tenant"]
    dataset_id = ((record["spec"] or {}).get("dataset") or {}).get("id")
    uses = [dataset_key(dataset_id)] if dataset_id else []
    if limit is not None:
        ensure_indexed(redis)
    script = redis.register_script(CREATE_WITHIN_LIMIT)
    refused = script(
        keys=[*keys, tenant_active_key(tenant), *uses],
        args=[
            json.dumps(record),
            member,
            record["id"],
            json.dumps(event),
            events_maxlen,
            -1 if limit is None else limit,
        ],
    )
    if int(refused) == -2:
        raise DatasetGoneError(dataset_id)
    if int(refused) >= 0:
        raise ActiveJobLimitError(tenant, int(refused), limit)
