"""The per-tenant active-job limit, checked and reserved in one atomic Redis step.

Counting a tenant's active jobs and then creating one is a race: 60 concurrent submissions
against a limit of 16 were all counted before any was created, and 39-42 got in. The Lua script
below counts and creates in one step that Redis runs alone. ``gradq:tenant:{t}:active`` indexes
the tenant's unfinished jobs; ids that left ``gradq:jobs:active`` (finished jobs, removed there
by ``JobStore.update``) are pruned from it as the script counts, so it needs no other upkeep.
"""

from __future__ import annotations

import json

import redis as redis_lib

# KEYS: record, tenant's job list (zset), all active ids, events stream, tenant's active ids
# ARGV: record JSON, zset member, job id, created-event JSON, events maxlen, limit (-1: none)
# returns -1 when the job was created, else the number of active jobs that refused it
CREATE_WITHIN_LIMIT = """
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


def tenant_active_key(tenant: str) -> str:
    return f"gradq:tenant:{tenant}:active"


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
    is at ``limit`` active jobs (None: no limit); raises ActiveJobLimitError then."""
    tenant = record["tenant"]
    script = redis.register_script(CREATE_WITHIN_LIMIT)
    refused = script(
        keys=[*keys, tenant_active_key(tenant)],
        args=[
            json.dumps(record),
            member,
            record["id"],
            json.dumps(event),
            events_maxlen,
            -1 if limit is None else limit,
        ],
    )
    if int(refused) >= 0:
        raise ActiveJobLimitError(tenant, int(refused), limit)
