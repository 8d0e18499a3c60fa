"""ModelStore: trained models in Redis, where the API loads them for prediction.

Keys: ``gradq:model:{id}`` (metadata JSON), ``gradq:model:{id}:weights`` (the ``nnlib.save`` .npz
bytes, loaded with ``allow_pickle=False``), ``gradq:tenant:{t}:models`` (sorted set, newest first).
"""

from __future__ import annotations

import io
import json
import secrets
import time

import redis as redis_lib

import nnlib
from worker.jobs import JobStore, utc_now


def model_key(model_id: str) -> str:
    return f"gradq:model:{model_id}"


class ModelStore:
    """Save, describe, list, load and delete trained models."""

    def __init__(self, redis: redis_lib.Redis):
        self.redis = redis

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
        weights = buffer.getvalue()
        metadata["size_bytes"] = len(weights)
        pipe = self.redis.pipeline()
        pipe.set(model_key(model_id), json.dumps(metadata))
        pipe.set(model_key(model_id) + ":weights", weights)
        pipe.zadd(f"gradq:tenant:{tenant}:models", {model_id: time.time()})
        pipe.execute()
        return metadata

    def get(self, model_id: str) -> dict | None:
        raw = self.redis.get(model_key(model_id))
        return json.loads(raw) if raw is not None else None

    def weights(self, model_id: str) -> bytes | None:
        """The ``.npz`` file (as written by ``nnlib.save``), or None."""
        return self.redis.get(model_key(model_id) + ":weights")

    def list(self, tenant: str, limit: int = 100) -> list[dict]:
        """The tenant's models, newest first."""
        ids = self.redis.zrevrange(f"gradq:tenant:{tenant}:models", 0, limit - 1)
        raws = self.redis.mget([model_key(i.decode()) for i in ids]) if ids else []
        return [json.loads(raw) for raw in raws if raw is not None]

    def delete(self, model_id: str) -> bool:
        """Remove the model (and its id from its job's record); False if it did not exist."""
        metadata = self.get(model_id)
        if metadata is None:
            return False
        pipe = self.redis.pipeline()
        pipe.delete(model_key(model_id), model_key(model_id) + ":weights")
        pipe.zrem(f"gradq:tenant:{metadata['tenant']}:models", model_id)
        pipe.execute()
        if metadata.get("job_id"):
            JobStore(self.redis).forget_model(metadata["job_id"], model_id)
        return True

    def load_model(self, model_id: str) -> tuple[nnlib.Model, dict]:
        """(Model, metadata); KeyError if the model does not exist."""
        metadata = self.get(model_id)
        weights = self.weights(model_id)
        if metadata is None or weights is None:
            raise KeyError(model_id)
        model, _ = nnlib.load(io.BytesIO(weights))
        return model, metadata
