"""ArtifactStore: objects in a backend, their records in Redis, every read checked.

A record is small JSON in the hash ``gradq:artifacts`` (field: the object key): ``key``, ``size``
(bytes), ``sha256`` (hex), ``dtype`` and ``shape`` (for raw arrays; None otherwise), ``owner``
(the Redis key whose existence keeps the object alive: a model, data set or job record) and
``created`` (Unix seconds). Writes are upload-then-publish: ``upload`` stores the object and
returns its record, ``publish`` makes it visible (in the caller's pipeline, together with the
owner's own metadata). A crash in between leaves an unreferenced object, which the collector
removes after a grace period; a record never points at nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from worker.storage.base import ArtifactCorruptError, ArtifactMissingError, Backend

RECORDS = "gradq:artifacts"


class ArtifactStore:
    """Upload, publish, read (size + SHA-256 checked) and remove artifacts."""

    def __init__(self, redis, backend: Backend):
        self.redis = redis
        self.backend = backend

    def upload(
        self,
        key: str,
        parts: Iterable[memoryview | bytes] | bytes | memoryview,
        *,
        owner: str,
        dtype: str | None = None,
        shape: list[int] | None = None,
    ) -> dict:
        """Store the object (hashing it on the way) and return its unpublished record."""
        if isinstance(parts, bytes | bytearray | memoryview):
            parts = [parts]
        if isinstance(parts, list | tuple):
            # hash on a second thread while the backend writes: hashlib and file/socket writes
            # both release the GIL, so a checkpoint costs about one pass, not two
            views = [memoryview(part).cast("B") for part in parts]
            with ThreadPoolExecutor(1, thread_name_prefix="gradq-sha256") as hasher:
                hashed = hasher.submit(_digest, views)
                self.backend.write(key, views)
                digest, size = hashed.result()
        else:  # a stream (e.g. an upload read as it arrives): hash each part as it passes
            digest, counted = hashlib.sha256(), [0]
            self.backend.write(key, _hashed(parts, digest, counted))
            size = counted[0]
        return {
            "key": key,
            "size": size,
            "sha256": digest.hexdigest(),
            "dtype": dtype,
            "shape": list(shape) if shape is not None else None,
            "owner": owner,
            "created": time.time(),
        }

    def publish(self, record: dict, pipe=None) -> None:
        """Make ``record`` visible (in ``pipe`` when given: the caller executes it)."""
        target = pipe if pipe is not None else self.redis
        target.hset(RECORDS, record["key"], json.dumps(record))

    def put(self, key: str, parts, *, owner: str, **array_info) -> dict:
        """``upload`` then ``publish``; returns the record."""
        record = self.upload(key, parts, owner=owner, **array_info)
        self.publish(record)
        return record

    def record(self, key: str) -> dict | None:
        raw = self.redis.hget(RECORDS, key)
        return json.loads(raw) if raw is not None else None

    def records(self) -> Iterator[dict]:
        """Every published record (HSCAN: no single huge reply)."""
        for _, raw in self.redis.hscan_iter(RECORDS, count=500):
            yield json.loads(raw)

    def read(self, key_or_record: str | dict) -> bytearray:
        """The object's bytes, checked against its record.

        ArtifactMissingError: no record or no object; ArtifactCorruptError: size or SHA-256
        differs. Both messages name the object.
        """
        record = self._resolve(key_or_record)
        out = bytearray(record["size"])
        self.read_into(record, memoryview(out))
        return out

    def read_into(self, record: dict, out: memoryview) -> None:
        """Stream the object into ``out`` (``record["size"]`` bytes) and check it."""
        fill_checked(record, out, self.backend.read_into(record["key"], out), self.backend.url)

    def unpublish(self, key: str, pipe=None) -> None:
        """Drop the record (in ``pipe`` when given); the object stays until ``delete_object``."""
        (pipe if pipe is not None else self.redis).hdel(RECORDS, key)

    def delete_object(self, key: str) -> None:
        self.backend.delete(key)

    def remove(self, key: str) -> None:
        """Drop the record, then the object (a crash in between leaves work for the collector)."""
        self.unpublish(key)
        self.delete_object(key)

    def _resolve(self, key_or_record: str | dict) -> dict:
        if isinstance(key_or_record, dict):
            return key_or_record
        record = self.record(key_or_record)
        if record is None:
            raise ArtifactMissingError(f"artifact {key_or_record!r} has no record")
        return record


def fill_checked(record: dict, out: memoryview, filled: Iterator[int], where: str) -> None:
    """Run a ``read_into`` (``filled``: bytes of ``out`` filled so far, after each chunk) and
    check the result against ``record``; ArtifactCorruptError naming the object otherwise.

    Each filled chunk is hashed on a second thread (in order) while the next one arrives:
    hashlib releases the GIL on large buffers, so a checked read costs about one pass, not two.
    """
    digest, done = hashlib.sha256(), 0
    with ThreadPoolExecutor(1, thread_name_prefix="gradq-sha256") as hasher:
        for end in filled:
            hasher.submit(digest.update, out[done:end])
            done = end
    verify(record, done, digest.hexdigest(), where)


def verify(record: dict, size: int, sha256: str, where: str) -> None:
    """ArtifactCorruptError naming the object unless ``size`` and ``sha256`` match ``record``."""
    key = record["key"]
    if size != record["size"]:
        raise ArtifactCorruptError(
            f"artifact {key!r} in {where} is truncated: {size} of {record['size']} bytes"
        )
    if sha256 != record["sha256"]:
        raise ArtifactCorruptError(
            f"artifact {key!r} in {where} is corrupt: SHA-256 {sha256[:16]}... does not match "
            f"its record ({record['sha256'][:16]}...)"
        )


def _digest(views: list[memoryview]):
    digest = hashlib.sha256()
    for view in views:
        digest.update(view)
    return digest, sum(len(view) for view in views)


def _hashed(parts: Iterable, digest, counted: list[int]) -> Iterator[memoryview]:
    for part in parts:
        view = memoryview(part).cast("B")
        digest.update(view)
        counted[0] += len(view)
        yield view
