"""Pages of a tenant's jobs, newest first, optionally filtered by status and name.

Reads ``gradq:tenant:{t}:jobs`` (all scores 0, members ``<created µs>|<id>``: lexicographic order
is creation order, so a member is a stable cursor) and the records it points at.
"""

from __future__ import annotations

import json

import redis as redis_lib

from worker.jobs import job_key

FILTER_SCAN = 4000  # records one filtered list call looks at, at most


def page_jobs(
    redis: redis_lib.Redis,
    tenant: str,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    name: str | None = None,
) -> tuple[list[dict], str | None]:
    """Newest first; ``cursor`` is the previous page's ``next_cursor`` (None: no more);
    ``name`` keeps jobs whose name contains it (case-insensitive). A filtered page looks at
    most ``FILTER_SCAN`` records, so it may hold fewer than ``limit`` jobs and still have a
    ``next_cursor``: its cost stays bounded however long the tenant's history is."""
    wanted = name.lower() if name else None
    # A filter may skip many records: read bigger batches, and rule records out on their raw
    # bytes before parsing them (JSON escapes non-ASCII, so only an ASCII name can be).
    filtered = bool(status or name)
    batch = max(limit, min(500, FILTER_SCAN) if filtered else 50)
    needles = [f'"status": "{status}"'.encode()] if status else []
    if wanted is not None and wanted.isascii():
        needles.append(json.dumps(wanted)[1:-1].encode())
    key = f"gradq:tenant:{tenant}:jobs"
    found: list[dict] = []
    upper = "(" + cursor if cursor else "+"
    scanned = 0
    while len(found) < limit and not (filtered and scanned >= FILTER_SCAN):
        members = redis.zrevrangebylex(key, upper, "-", start=0, num=batch)
        scanned += len(members)
        if not members:
            return found, None
        # one round trip for the page, not one per job
        raws = redis.mget([job_key(m.decode().split("|", 1)[1]) for m in members])
        for member, raw in zip(members, raws, strict=True):
            upper = "(" + member.decode()
            if raw is None or not all(n in raw.lower() for n in needles):
                continue
            record = json.loads(raw)
            if _matches(record, status, wanted):
                found.append(record)
                if len(found) == limit:
                    break
    more = redis.zrevrangebylex(key, upper, "-", start=0, num=1)
    return found, (upper[1:] if more else None)


def _matches(record: dict, status: str | None, name: str | None) -> bool:
    if status is not None and record["status"] != status:
        return False
    return name is None or name in (record.get("name") or "").lower()
