"""Accepted uploads stored where every worker and API replica reaches them.

Array bytes go through a ``BlobStore``: by default the artifact store (``worker.storage``: files or
S3, every read checked against its SHA-256); ``RedisChunkedBlobs`` (Redis lists of chunks of at
most ``CHUNK_BYTES``) is how the previous version stored them, still read for migration. Metadata
is one Redis hash per set plus a per-tenant index, written only after all chunks, so a set that is
listed is always complete. Arrays come back with ``np.frombuffer``: nothing is ever unpickled.

Stores are atomic: chunks are written under a temporary key that expires after
``PARTIAL_TTL_SECONDS``, and renamed to their final key in the same transaction that writes the
metadata. An API killed mid-upload leaves only keys that expire (it left 52 MB for good before).
"""

from __future__ import annotations

import json
import math
import secrets
import time
from typing import Protocol

import numpy as np

from worker.datasets.base import DatasetError, RawSplits
from worker.datasets.quota import USAGE, StorageQuota
from worker.datasets.uploads import UploadedArrays, raw_from_arrays

CHUNK_BYTES = 4 * 1024 * 1024
PREFIX = "gradq:dataset:"
TENANT_INDEX = "gradq:datasets:tenant:"
# chunks fetched per round trip when reassembling (bounded memory in flight)
FETCH_WINDOW = 8
PARTIAL_TTL_SECONDS = 3600  # longer than any upload takes; then an abandoned one is gone


class BlobStore(Protocol):
    """Where array bytes live: ``put`` a buffer under a key, ``get`` it back, ``delete`` it."""

    def put(self, key: str, data: memoryview) -> int: ...

    def publish(self, key: str, pipe) -> None:
        """Add to ``pipe`` (the metadata transaction) what makes ``put(key)`` final."""

    def get(self, key: str, nbytes: int) -> bytearray: ...

    def delete(self, key: str) -> None: ...


def binary_client(redis):
    """``redis`` itself, or a twin on the same server that returns bytes (chunks are binary)."""
    pool = redis.connection_pool
    if not pool.connection_kwargs.get("decode_responses"):
        return redis
    kwargs = {**pool.connection_kwargs, "decode_responses": False}
    binary_pool = type(pool)(connection_class=pool.connection_class, **kwargs)
    return type(redis)(connection_pool=binary_pool)


class RedisChunkedBlobs:
    """Blobs as Redis lists of ``chunk_bytes`` chunks under ``gradq:dataset:<key>``."""

    def __init__(self, redis, chunk_bytes: int = CHUNK_BYTES):
        self.redis = binary_client(redis)
        self.chunk_bytes = chunk_bytes

    def put(self, key: str, data: memoryview) -> int:
        """Write the chunks under a temporary key with a TTL; ``publish`` makes them final."""
        partial = self._partial(key)
        self.redis.delete(partial)
        chunks = range(0, len(data), self.chunk_bytes)
        for start in chunks:
            pipe = self.redis.pipeline(transaction=False)
            pipe.rpush(partial, bytes(data[start : start + self.chunk_bytes]))
            pipe.expire(partial, PARTIAL_TTL_SECONDS)
            pipe.execute()
        if not chunks:  # an empty array: an empty list is no key; keep a marker list
            self.redis.rpush(partial, b"")
            self.redis.expire(partial, PARTIAL_TTL_SECONDS)
        return len(chunks)

    def publish(self, key: str, pipe) -> None:
        pipe.rename(self._partial(key), PREFIX + key)
        pipe.persist(PREFIX + key)

    @staticmethod
    def _partial(key: str) -> str:
        return f"{PREFIX}partial:{key}"

    def get(self, key: str, nbytes: int) -> bytearray:
        name, out, offset = PREFIX + key, bytearray(nbytes), 0
        count = self.redis.llen(name)
        for first in range(0, count, FETCH_WINDOW):
            for chunk in self.redis.lrange(name, first, first + FETCH_WINDOW - 1):
                out[offset : offset + len(chunk)] = chunk
                offset += len(chunk)
        if offset != nbytes:
            raise DatasetError(f"stored blob {key!r} has {offset} bytes, expected {nbytes}")
        return out

    def delete(self, key: str) -> None:
        self.redis.delete(PREFIX + key, self._partial(key))


def dataset_key(dataset_id: str) -> str:
    """The Redis hash of an uploaded set's metadata: the set exists exactly while this does."""
    return PREFIX + dataset_id


def decode_info(fields: dict) -> dict:
    """Metadata as ``DatasetStore.info`` returns it, from the raw hash ``fields``."""
    return {as_text(k): json.loads(v) for k, v in fields.items()}


def score_cursor(cursor: str) -> float:
    """A list cursor (the last row's sorted-set score) as a float; ValueError if it is not one."""
    value = float(cursor)
    if not math.isfinite(value):
        raise ValueError(f"cursor {cursor!r} is not finite")
    return value


class DatasetStore:
    """Uploaded data sets by id (``ds_<16 hex>``), with a per-tenant listing."""

    def __init__(self, redis, blobs: BlobStore | None = None, quota_bytes: int | None = None):
        self.redis = redis
        if blobs is None:
            from worker.storage.datasets import dataset_blobs

            blobs = dataset_blobs(redis)
        self.blobs = blobs
        self.quota = StorageQuota(redis, quota_bytes)

    def check_room(self, tenant: str, nbytes: int) -> None:
        """StorageQuotaExceeded if ``nbytes`` more cannot fit the tenant's quota now."""
        self._backfill_usage(tenant)
        self.quota.check(tenant, nbytes)

    def put(self, tenant: str, uploaded: UploadedArrays, name: str | None = None) -> dict:
        """Store an accepted upload; return its info dict (see ``info``).

        Its bytes are reserved against the tenant's quota first (StorageQuotaExceeded).
        """
        dataset_id = "ds_" + secrets.token_hex(8)
        nbytes = sum(int(np.asarray(a).nbytes) for a in uploaded.arrays.values())
        self._backfill_usage(tenant)
        self.quota.reserve(tenant, dataset_id, nbytes)
        arrays = {}
        try:
            for array_name, array in uploaded.arrays.items():
                data = np.ascontiguousarray(array)
                chunks = self.blobs.put(f"{dataset_id}:{array_name}", memoryview(data).cast("B"))
                arrays[array_name] = {
                    "shape": list(data.shape),
                    "dtype": data.dtype.str,
                    "nbytes": data.nbytes,
                    "chunks": chunks,
                }
        except BaseException:
            for array_name in uploaded.arrays:
                self.blobs.delete(f"{dataset_id}:{array_name}")
            self.quota.release(tenant, dataset_id)
            raise
        created = time.time()
        info = {
            "id": dataset_id,
            "tenant": tenant,
            "name": name or uploaded.filename,
            "filename": uploaded.filename,
            "sha256": uploaded.sha256,
            "task": uploaded.task,
            "num_classes": uploaded.num_classes,
            "classes": uploaded.to_raw().classes,
            "label_column": uploaded.label_column,
            "input_shape": list(uploaded.input_shape),
            "dtype": arrays["x_train"]["dtype"],
            "shapes": {k: v["shape"] for k, v in arrays.items()},
            "is_image": uploaded.is_image,
            "pixel_max": uploaded.pixel_max,
            "nbytes": sum(v["nbytes"] for v in arrays.values()),
            "target_range": _target_range(uploaded),
            "arrays": arrays,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
        }
        pipe = self.redis.pipeline(transaction=True)
        for array_name in arrays:
            self.blobs.publish(f"{dataset_id}:{array_name}", pipe)
        pipe.hset(dataset_key(dataset_id), mapping={k: json.dumps(v) for k, v in info.items()})
        pipe.zadd(TENANT_INDEX + tenant, {dataset_id: created})
        self.quota.commit(pipe, tenant, dataset_id, info["nbytes"])
        pipe.execute()
        return info

    def info(self, dataset_id: str) -> dict | None:
        """Metadata: id, tenant, name, filename, sha256, task, num_classes, classes (names:
        text CSV labels, else "0".."C-1"), label_column (a CSV's), input_shape, dtype, shapes,
        nbytes, target_range (regression: [min, max]), created (ISO 8601 UTC), arrays;
        ``None`` if there is no such set."""
        fields = self.redis.hgetall(dataset_key(str(dataset_id)))
        return decode_info(fields) if fields else None

    def arrays(self, dataset_id: str) -> dict[str, np.ndarray]:
        """The stored arrays by name (``x_train``, ``y_train``, maybe ``x_test``, ``y_test``)."""
        info = self._require(dataset_id)
        out = {}
        for array_name, meta in info["arrays"].items():
            dtype = np.dtype(meta["dtype"])
            if dtype.kind not in "biuf":  # metadata is ours, but never build object arrays
                raise DatasetError(f"{dataset_id}: stored {array_name} has dtype {dtype}")
            data = self.blobs.get(f"{dataset_id}:{array_name}", meta["nbytes"])
            out[array_name] = np.frombuffer(data, dtype=dtype).reshape(meta["shape"])
        return out

    def raw(self, dataset_id: str) -> RawSplits:
        """The stored set as RawSplits (what ``load_dataset`` splits and normalizes)."""
        info = self._require(dataset_id)
        return raw_from_arrays(
            self.arrays(dataset_id),
            info["num_classes"],
            info["is_image"],
            info["pixel_max"],
            classes=info.get("classes"),
            label_column=info.get("label_column"),
        )

    def list(self, tenant: str) -> list[dict]:
        """Info of the tenant's sets, newest first."""
        return self.page(tenant, limit=10**9)[0]

    def page(
        self, tenant: str, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[dict], str | None]:
        """Newest first, ``limit`` at a time; ``cursor`` is the previous page's next cursor
        (the creation score of its last set; ValueError if it is not a number)."""
        upper = "+inf" if cursor is None else f"({score_cursor(cursor)!r}"
        rows = self.redis.zrevrangebyscore(
            TENANT_INDEX + tenant, upper, "-inf", start=0, num=limit + 1, withscores=True
        )
        more, rows = len(rows) > limit, rows[:limit]
        pipe = self.redis.pipeline(transaction=False)
        for dataset_id, _ in rows:
            pipe.hgetall(dataset_key(as_text(dataset_id)))
        found = [decode_info(fields) for fields in pipe.execute() if fields]
        return found, (repr(rows[-1][1]) if more else None)

    def delete(self, dataset_id: str) -> bool:
        """Remove a set (metadata first, so it disappears at once); False if it did not exist.

        Jobs are not consulted: ``worker.datasets.in_use.delete_unless_in_use`` refuses while
        an unfinished job trains on the set, atomically with job admission.
        """
        info = self.info(dataset_id)
        if info is None:
            return False
        pipe = self.redis.pipeline(transaction=True)
        self.forget(pipe, info)
        pipe.execute()
        self.delete_arrays(info)
        return True

    def forget(self, pipe, info: dict) -> None:
        """Queue on ``pipe`` (a transaction) what makes the set ``info`` disappear: metadata,
        tenant index, quota; its arrays stay until ``delete_arrays``."""
        pipe.delete(dataset_key(info["id"]))
        pipe.zrem(TENANT_INDEX + info["tenant"], info["id"])
        self.quota.release(info["tenant"], info["id"], pipe)

    def delete_arrays(self, info: dict) -> None:
        """Delete the arrays of a set already forgotten (nothing lists or admits it then)."""
        for array_name in info["arrays"]:
            self.blobs.delete(f"{info['id']}:{array_name}")

    def _backfill_usage(self, tenant: str) -> None:
        """Count sets stored before quotas existed (HSETNX: concurrent backfills agree)."""
        if self.redis.exists(USAGE + tenant) or not self.redis.exists(TENANT_INDEX + tenant):
            return
        for info in self.list(tenant):
            self.redis.hsetnx(USAGE + tenant, info["id"], info.get("nbytes") or 0)

    def _require(self, dataset_id: str) -> dict:
        info = self.info(dataset_id)
        if info is None:
            raise DatasetError(f"dataset.id: no uploaded data set {dataset_id!r}")
        return info


def _target_range(uploaded: UploadedArrays) -> list[float] | None:
    """[min, max] of regression targets (train and test): the API checks losses against it."""
    if uploaded.num_classes is not None:
        return None
    ys = [uploaded.arrays[k] for k in ("y_train", "y_test") if k in uploaded.arrays]
    return [min(float(y.min()) for y in ys), max(float(y.max()) for y in ys)]


def as_text(value) -> str:
    """A Redis reply as str, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else value
