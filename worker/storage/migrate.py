"""Move everything the previous version kept in Redis (model weights, data set chunks) into the
artifact store. Each item moves like a first read would: upload, publish, then delete the Redis
copy, so running it twice, or alongside a live cluster, is safe."""

from __future__ import annotations

from dataclasses import dataclass

from worker.storage.artifacts import ArtifactStore


@dataclass
class Migrated:
    models: int = 0
    dataset_arrays: int = 0
    bytes_moved: int = 0


def migrate_legacy(redis, artifacts: ArtifactStore) -> Migrated:
    """Move legacy model weights and data set arrays; returns what moved."""
    from worker.datasets.store import PREFIX, DatasetStore
    from worker.models_store import ModelStore
    from worker.storage.datasets import ArtifactBlobs

    done = Migrated()
    models = ModelStore(redis, artifacts)
    for name in redis.scan_iter(match="gradq:model:*:weights", count=500):
        model_id = _text(name).split(":")[2]
        weights = models.migrate(model_id)
        if weights is not None:
            done.models += 1
            done.bytes_moved += len(weights)
    datasets = DatasetStore(redis, ArtifactBlobs(artifacts))
    for name in redis.scan_iter(match=PREFIX + "ds_*:*", count=500):
        blob_key = _text(name)[len(PREFIX) :]
        dataset_id, array_name = blob_key.split(":", 1)
        info = datasets.info(dataset_id)
        if info is None or array_name not in info["arrays"]:
            continue  # chunks of a set that was never completed or was deleted: leave them
        data = datasets.blobs.get(blob_key, info["arrays"][array_name]["nbytes"])
        done.dataset_arrays += 1
        done.bytes_moved += len(data)
    return done


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value
