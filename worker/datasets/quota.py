"""Per-tenant storage quota of data sets: the one place that counts a tenant's stored bytes.

Usage is a Redis hash per tenant (data set id -> bytes) written in the same transaction as the
set's metadata and removed with it, plus short-lived reservations taken atomically (one Lua
script: sum, compare, reserve) before any blob is written, so concurrent uploads cannot pass the
limit together. Where the bytes live (Redis chunks today, an artifact store later) is not its
concern: the store reports sizes, this module decides.
"""

from __future__ import annotations

import time

from worker.datasets.base import DatasetError

USAGE = "gradq:datasets:usage:"  # hash: dataset id -> stored bytes
RESERVED = "gradq:datasets:reserved:"  # hash: dataset id -> "<bytes>:<expiry unix time>"
RESERVATION_SECONDS = 3600  # an upload that crashed mid-write stops counting after this

# KEYS: usage, reserved. ARGV: now, id, bytes, limit, expiry. Returns {granted 0/1, used bytes}.
_RESERVE = """
local used = 0
for _, n in ipairs(redis.call('HVALS', KEYS[1])) do used = used + tonumber(n) end
local reserved = redis.call('HGETALL', KEYS[2])
for i = 1, #reserved, 2 do
  local bytes, expiry = string.match(reserved[i + 1], '^(%d+):(%d+)$')
  if tonumber(expiry) < tonumber(ARGV[1]) then
    redis.call('HDEL', KEYS[2], reserved[i])
  else
    used = used + tonumber(bytes)
  end
end
if used + tonumber(ARGV[3]) > tonumber(ARGV[4]) then return {0, used} end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3] .. ':' .. ARGV[5])
return {1, used}
"""


class StorageQuotaExceeded(DatasetError):
    """Storing a set would take the tenant over its quota (the API answers 413)."""

    def __init__(self, tenant: str, needed: int, used: int, limit: int):
        super().__init__(
            f"file: storing this data set needs {needed} bytes; tenant {tenant} already stores "
            f"{used} of its {limit} bytes (GRADQ_MAX_STORAGE_BYTES_PER_TENANT): delete data "
            "sets to make room"
        )
        self.needed, self.used, self.limit = needed, used, limit


class StorageQuota:
    """Reserve, commit and release a tenant's data set bytes against ``limit`` (None: no limit)."""

    def __init__(self, redis, limit: int | None):
        self.redis = redis
        self.limit = limit
        self._reserve = redis.register_script(_RESERVE)

    def used(self, tenant: str) -> int:
        """Bytes of the tenant's stored sets (reservations of uploads in flight not included)."""
        return sum(int(n) for n in self.redis.hvals(USAGE + tenant))

    def check(self, tenant: str, nbytes: int) -> None:
        """Refuse early (before decompressing) what cannot fit; reserve() decides for good."""
        if self.limit is not None and self.used(tenant) + nbytes > self.limit:
            raise StorageQuotaExceeded(tenant, nbytes, self.used(tenant), self.limit)

    def reserve(self, tenant: str, dataset_id: str, nbytes: int) -> None:
        """Count ``nbytes`` for ``dataset_id`` now, atomically; StorageQuotaExceeded if over."""
        now = int(time.time())
        limit = self.limit if self.limit is not None else 2**62
        granted, used = self._reserve(
            keys=[USAGE + tenant, RESERVED + tenant],
            args=[now, dataset_id, nbytes, limit, now + RESERVATION_SECONDS],
        )
        if not int(granted):
            raise StorageQuotaExceeded(tenant, nbytes, int(used), limit)

    def commit(self, pipe, tenant: str, dataset_id: str, nbytes: int) -> None:
        """Queue on ``pipe`` (the metadata transaction): the reservation becomes usage."""
        pipe.hset(USAGE + tenant, dataset_id, nbytes)
        pipe.hdel(RESERVED + tenant, dataset_id)

    def release(self, tenant: str, dataset_id: str, pipe=None) -> None:
        """Stop counting ``dataset_id`` (deleted, or its upload failed)."""
        target = pipe if pipe is not None else self.redis.pipeline(transaction=True)
        target.hdel(USAGE + tenant, dataset_id)
        target.hdel(RESERVED + tenant, dataset_id)
        if pipe is None:
            target.execute()
