"""The model registry: names, versions that count up per tenant and name, movable aliases.

Keys (all under the tenant, so names never collide across tenants):
- ``gradq:tenant:{t}:registry``                  sorted set of names (score: last registration)
- ``gradq:tenant:{t}:registry:{name}:counter``   the last version number handed out (INCR)
- ``gradq:tenant:{t}:registry:{name}:versions``  hash version -> model id
- ``gradq:tenant:{t}:registry:{name}:aliases``   hash alias -> version
An alias lives in Redis only, so moving it is seen by every API process at its next request (the
API caches models by resolved id, never by alias).
"""

from __future__ import annotations

import math
import time

import redis as redis_lib

from worker.jobs import utc_now
from worker.models.refs import ModelRef, parse_model_ref

# Run inside the delete's transaction: a name whose last version is gone leaves the names list
# (its counter stays, so numbers are still never reused). Atomic against a concurrent register.
_FORGET_EMPTY_NAME = """
if redis.call('HLEN', KEYS[1]) == 0 then return redis.call('ZREM', KEYS[2], ARGV[1]) end
return 0
"""


def _key(tenant: str, name: str, part: str) -> str:
    return f"gradq:tenant:{tenant}:registry:{name}:{part}"


def names_key(tenant: str) -> str:
    return f"gradq:tenant:{tenant}:registry"


class VersionNotFoundError(KeyError):
    """No such version of the name (message names both)."""


class ModelRegistry:
    """Versions and aliases of the tenant's model names (metadata stays in ``ModelStore``)."""

    def __init__(self, redis: redis_lib.Redis):
        self.redis = redis

    def next_version(self, tenant: str, name: str) -> int:
        """A fresh version number for ``name`` (1, 2, ...; never reused, even after deletes)."""
        return int(self.queue_next_version(self.redis, tenant, name))

    @staticmethod
    def queue_next_version(target, tenant: str, name: str):
        """INCR the name's counter on ``target`` (a client, or a pipeline: its reply is the
        version)."""
        return target.incr(_key(tenant, name, "counter"))

    def register(self, pipe, tenant: str, name: str, version: int, model_id: str) -> None:
        """Queue the version's registration on ``pipe`` (the model's own save pipeline)."""
        pipe.hset(_key(tenant, name, "versions"), str(version), model_id)
        pipe.zadd(names_key(tenant), {name: time.time()})

    def unregister(self, tenant: str, name: str, version: int) -> None:
        """Forget a deleted version and every alias pointing at it."""
        aliases = self.aliases(tenant, name)
        pipe = self.redis.pipeline()
        pipe.hdel(_key(tenant, name, "versions"), str(version))
        for alias, target in aliases.items():
            if target == version:
                pipe.hdel(_key(tenant, name, "aliases"), alias)
        pipe.eval(_FORGET_EMPTY_NAME, 2, _key(tenant, name, "versions"), names_key(tenant), name)
        pipe.execute()

    def versions(self, tenant: str, name: str) -> dict[int, str]:
        """version -> model id, highest version first."""
        raw = self.redis.hgetall(_key(tenant, name, "versions"))
        pairs = sorted(((int(v), m.decode()) for v, m in raw.items()), reverse=True)
        return dict(pairs)

    def aliases(self, tenant: str, name: str) -> dict[str, int]:
        raw = self.redis.hgetall(_key(tenant, name, "aliases"))
        return {a.decode(): int(v) for a, v in sorted(raw.items())}

    def set_alias(self, tenant: str, name: str, alias: str, version: int) -> None:
        """Point ``alias`` at ``version`` (moving it if set); VersionNotFoundError if absent."""
        if not self.redis.hexists(_key(tenant, name, "versions"), str(version)):
            raise VersionNotFoundError(f"{name}/versions/{version}")
        self.redis.hset(_key(tenant, name, "aliases"), alias, str(version))

    def delete_alias(self, tenant: str, name: str, alias: str) -> bool:
        return bool(self.redis.hdel(_key(tenant, name, "aliases"), alias))

    def page_names(
        self, tenant: str, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[dict], str | None]:
        """The tenant's names, most recently registered first: ``name``, ``latest_version``,
        ``versions`` (how many exist), ``aliases`` (alias -> version), ``updated_at`` (the last
        registration). ``cursor`` is the previous page's next cursor (ValueError if not one)."""
        key = names_key(tenant)
        if cursor is None:
            rows = self.redis.zrevrangebyscore(key, "+inf", "-inf", 0, limit + 1, withscores=True)
        else:
            score, after = _name_cursor(cursor)
            ties = self.redis.zcount(key, score, score)  # names sharing the cursor's score
            rows = self.redis.zrevrangebyscore(key, score, "-inf", 0, limit + 1 + ties, True)
            # equal scores come in descending byte order: keep those after the cursor's name
            rows = [(n, s) for n, s in rows if s < score or n < after.encode()]
        more, rows = len(rows) > limit, rows[:limit]
        pipe = self.redis.pipeline(transaction=False)
        for name, _ in rows:
            pipe.hkeys(_key(tenant, name.decode(), "versions"))
            pipe.hgetall(_key(tenant, name.decode(), "aliases"))
        replies = pipe.execute()
        names = []
        for (name, score), versions, aliases in zip(rows, replies[::2], replies[1::2], strict=True):
            if versions:  # a name emptied before deletes removed it from the list
                names.append(
                    {
                        "name": name.decode(),
                        "latest_version": max(int(v) for v in versions),
                        "versions": len(versions),
                        "aliases": {a.decode(): int(v) for a, v in sorted(aliases.items())},
                        "updated_at": utc_now(score),
                    }
                )
        next_cursor = f"{rows[-1][1]!r}:{rows[-1][0].decode()}" if more else None
        return names, next_cursor

    def resolve(
        self, tenant: str, ref: str | ModelRef, allow_bare_name: bool = False
    ) -> str | None:
        """The model id ``ref`` means for ``tenant`` now, or None (ModelRefError if malformed).

        A model id is returned as is: the caller checks that the tenant owns it.
        """
        if isinstance(ref, str):
            ref = parse_model_ref(ref, allow_bare_name)
        if ref.model_id is not None:
            return ref.model_id
        version = ref.version
        if ref.alias is not None:
            raw = self.redis.hget(_key(tenant, ref.name, "aliases"), ref.alias)
            if raw is None:
                return None
            version = int(raw)
        if version is None:  # a bare name: its latest version
            versions = self.versions(tenant, ref.name)
            return next(iter(versions.values()), None)
        raw = self.redis.hget(_key(tenant, ref.name, "versions"), str(version))
        return raw.decode() if raw is not None else None


def _name_cursor(cursor: str) -> tuple[float, str]:
    """``"<score>:<name>"`` (the last row of a page) -> (score, name); ValueError otherwise."""
    score, sep, name = cursor.partition(":")
    value = float(score)
    if not sep or not name or not math.isfinite(value):
        raise ValueError(f"cursor {cursor!r} is not a names cursor")
    return value, name
