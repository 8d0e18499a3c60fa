"""Uploaded data set arrays as artifacts: the ``BlobStore`` that ``DatasetStore`` writes through.

Blob ``ds_x:x_train`` is the artifact ``datasets/ds_x/x_train`` owned by ``gradq:dataset:ds_x``.
Reads from a remote store (S3) go through the per-host cache, so the shards of a job on one host
download a set once. Sets stored by the previous version as Redis lists of chunks are read from
there and moved into the artifact store on first access (or by ``gradq migrate``).
"""

from __future__ import annotations

from worker.storage.artifacts import ArtifactStore
from worker.storage.filesystem import FileBackend
from worker.storage.host_cache import HostCache


def artifact_key(blob_key: str) -> str:
    dataset_id, array_name = blob_key.split(":", 1)
    return f"datasets/{dataset_id}/{array_name}"


def owner_key(blob_key: str) -> str:
    return "gradq:dataset:" + blob_key.split(":", 1)[0]


class ArtifactBlobs:
    """``put`` / ``get`` / ``delete`` of data set arrays in the artifact store."""

    def __init__(self, artifacts: ArtifactStore, cache: HostCache | None = None):
        self.artifacts, self.cache = artifacts, cache
        self._uploaded: dict[str, dict] = {}  # blob key -> record awaiting ``publish``

    def put(self, key: str, data: memoryview) -> int:
        """Upload the array's bytes (``publish`` makes them visible); returns 0 Redis chunks."""
        self._uploaded[key] = self.artifacts.upload(artifact_key(key), data, owner=owner_key(key))
        return 0

    def publish(self, key: str, pipe) -> None:
        """Add the array's record to ``pipe``: the transaction that writes the set's metadata."""
        self.artifacts.publish(self._uploaded.pop(key), pipe)

    def get(self, key: str, nbytes: int) -> bytearray:
        """The array's bytes, size and SHA-256 checked (ArtifactError naming it otherwise)."""
        record = self.artifacts.record(artifact_key(key))
        if record is None:
            legacy = self._migrate(key, nbytes)
            if legacy is not None:
                return legacy
            return self.artifacts.read(artifact_key(key))  # ArtifactMissingError naming it
        if self.cache is None:
            return self.artifacts.read(record)
        return self.cache.fetch(record, lambda out: self.artifacts.read_into(record, out))

    def delete(self, key: str) -> None:
        self._uploaded.pop(key, None)
        self.artifacts.remove(artifact_key(key))

    def _migrate(self, key: str, nbytes: int) -> bytearray | None:
        """Move a previous version's Redis-chunked blob into the store; None if there is none."""
        from worker.datasets.store import PREFIX, RedisChunkedBlobs

        legacy = RedisChunkedBlobs(self.artifacts.redis)
        if not legacy.redis.exists(PREFIX + key):
            return None
        data = legacy.get(key, nbytes)
        self.artifacts.put(artifact_key(key), data, owner=owner_key(key))
        legacy.delete(key)
        return data


def dataset_blobs(redis, settings=None) -> ArtifactBlobs:
    """The configured artifact store, with a host cache when objects are remote."""
    from worker.storage.url import artifact_store

    if settings is None:
        from worker.config import get_settings

        settings = get_settings()
    artifacts = artifact_store(redis, settings)
    if isinstance(artifacts.backend, FileBackend):
        return ArtifactBlobs(artifacts)  # already local (or a shared mount): nothing to cache
    cache = HostCache(settings.data_dir / "artifact-cache", settings.dataset_cache_bytes)
    return ArtifactBlobs(artifacts, cache)
