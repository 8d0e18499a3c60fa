"""ModelStore: trained models, where the API loads them for prediction.

Redis keys: ``gradq:model:{id}`` (metadata JSON, with ``weights_key``), ``gradq:tenant:{t}:models``
(sorted set, newest first). The weights (the ``nnlib.save`` .npz, loaded with
``allow_pickle=False``) are the artifact ``models/{id}.npz``, read with its size and SHA-256
checked. Models of the previous version kept their weights in ``gradq:model:{id}:weights``; the
first read moves them to the artifact store (``gradq migrate`` moves them all).
"""

from __future__ import annotations

import io
import json
import secrets
import time

import redis as redis_lib

import nnlib
from worker.jobs import utc_now
from worker.storage import ArtifactStore, artifact_store


def model_key(model_id: str) -> str:
    return f"gradq:model:{model_id}"


def weights_key(model_id: str) -> str:
    return f"models/{model_id}.npz"


class ModelStore:
    """Save, describe, list, load and delete trained models."""

    def __init__(self, redis: redis_lib.Redis, artifacts: ArtifactStore | None = None):
        self.redis = redis
        self.artifacts = artifacts if artifacts is not None else artifact_store(redis)

    def save(
        self,
        model: nnlib.Model,
        *,
        tenant: str,
        job_id: str,
        name: str | None = None,
        preprocessing: dict | None = None,
        classes: list[str] | None = None,
        num_classes: int | None = None,
        metrics: dict | None = None,
    ) -> dict:
        """Store ``model`` and its metadata; returns the metadata (with ``id``)."""
        model_id = "mdl_" + secrets.token_hex(8)
        metadata = {
            "id": model_id,
            "tenant": tenant,
            "job_id": job_id,
            "name": name,
            "architecture": model.spec,
            "input_shape": list(model.input_shape),
            "output_shape": list(model.output_shape),
            "num_parameters": model.num_parameters(),
            "classes": classes,
            "num_classes": num_classes,
            "preprocessing": preprocessing or {},
            "metrics": metrics or {},
            "created_at": utc_now(),
        }
        buffer = io.BytesIO()
        nnlib.save(buffer, model, **{k: v for k, v in metadata.items() if k != "architecture"})
        weights = buffer.getbuffer()
        metadata["size_bytes"] = len(weights)
        metadata["weights_key"] = weights_key(model_id)
        record = self.artifacts.upload(
            weights_key(model_id), weights, owner=model_key(model_id)
        )  # upload, then publish record and metadata together
        pipe = self.redis.pipeline()
        pipe.set(model_key(model_id), json.dumps(metadata))
        self.artifacts.publish(record, pipe)
        pipe.zadd(f"gradq:tenant:{tenant}:models", {model_id: time.time()})
        pipe.execute()
        return metadata

    def get(self, model_id: str) -> dict | None:
        raw = self.redis.get(model_key(model_id))
        return json.loads(raw) if raw is not None else None

    def weights(self, model_id: str) -> bytes | None:
        """The ``.npz`` file (as written by ``nnlib.save``), or None if there is no such model.

        ArtifactError (naming the object) if the stored weights are missing or damaged.
        """
        metadata = self.get(model_id)
        if metadata is None:
            return None
        if "weights_key" not in metadata:
            return self.migrate(model_id, metadata)
        return bytes(self.artifacts.read(metadata["weights_key"]))

    def migrate(self, model_id: str, metadata: dict | None = None) -> bytes | None:
        """Move a previous version's Redis-held weights to the artifact store; returns them."""
        metadata = metadata or self.get(model_id)
        legacy = self.redis.get(model_key(model_id) + ":weights")
        if metadata is None or legacy is None:
            return None
        record = self.artifacts.upload(weights_key(model_id), legacy, owner=model_key(model_id))
        metadata = {**metadata, "weights_key": record["key"]}
        pipe = self.redis.pipeline()
        pipe.set(model_key(model_id), json.dumps(metadata))
        self.artifacts.publish(record, pipe)
        pipe.delete(model_key(model_id) + ":weights")
        pipe.execute()
        return legacy

    def list(self, tenant: str, limit: int = 100) -> list[dict]:
        """The tenant's models, newest first."""
        ids = self.redis.zrevrange(f"gradq:tenant:{tenant}:models", 0, limit - 1)
        raws = self.redis.mget([model_key(i.decode()) for i in ids]) if ids else []
        return [json.loads(raw) for raw in raws if raw is not None]

    def delete(self, model_id: str) -> bool:
        """Remove the model; False if it did not exist."""
        metadata = self.get(model_id)
        if metadata is None:
            return False
        pipe = self.redis.pipeline()
        pipe.delete(model_key(model_id), model_key(model_id) + ":weights")
        pipe.zrem(f"gradq:tenant:{metadata['tenant']}:models", model_id)
        self.artifacts.unpublish(weights_key(model_id), pipe)
        pipe.execute()
        self.artifacts.delete_object(weights_key(model_id))
        return True

    def load_model(self, model_id: str) -> tuple[nnlib.Model, dict]:
        """(Model, metadata); KeyError if the model does not exist."""
        metadata = self.get(model_id)
        weights = self.weights(model_id) if metadata is not None else None
        if metadata is None or weights is None:
            raise KeyError(model_id)
        model, _ = nnlib.load(io.BytesIO(weights))
        return model, metadata
