"""ModelStore: stored models (trained or imported), where the API loads them for prediction.

Redis keys: ``gradq:model:{id}`` (metadata JSON, with ``weights_key``), ``gradq:tenant:{t}:models``
(sorted set by creation time, newest first). Every model is one version of a name
(``worker.models.registry``). The weights (the ``nnlib.save`` .npz, loaded with
``allow_pickle=False``) are the artifact ``models/{id}.npz``, read with size and SHA-256 checked,
only through ``save``/``weights``/``load_model``/``delete``. Models of an earlier version kept
them in ``gradq:model:{id}:weights``: the first read moves them (``gradq migrate``: all at once).
"""

from __future__ import annotations

import io
import json
import math
import secrets
import time
from dataclasses import dataclass

import redis as redis_lib

import nnlib
from worker.jobs import JobStore, utc_now
from worker.json_update import update_json
from worker.models.registry import ModelRegistry
from worker.storage import ArtifactStore, artifact_store


def model_key(model_id: str) -> str:
    return f"gradq:model:{model_id}"


def weights_key(model_id: str) -> str:
    return f"models/{model_id}.npz"


def tenant_models_key(tenant: str) -> str:
    return f"gradq:tenant:{tenant}:models"


def score_cursor(cursor: str) -> float:
    """A list cursor (the last row's sorted-set score) as a float; ValueError if it is not one."""
    value = float(cursor)
    if not math.isfinite(value):
        raise ValueError(f"cursor {cursor!r} is not finite")
    return value


def signature(model: nnlib.Model, classes, preprocessing: dict | None) -> dict:
    """What a caller must send and gets back: raw input shape/dtype, outputs, classes."""
    return {
        "inputs": {"shape": list(model.input_shape), "dtype": "float32"},
        "outputs": {"shape": list(model.output_shape), "dtype": str(model.dtype)},
        "classes": classes,
        "preprocessing": preprocessing or {},
    }


@dataclass(frozen=True)
class PendingModel:
    """An uploaded model not yet published: its metadata and its weights' artifact record."""

    metadata: dict
    record: dict


class ModelStore:
    """Save, describe, list, load, update and delete models."""

    def __init__(self, redis: redis_lib.Redis, artifacts: ArtifactStore | None = None):
        self.redis = redis
        self.registry = ModelRegistry(redis)
        self.artifacts = artifacts if artifacts is not None else artifact_store(redis)

    def save(self, model: nnlib.Model, *, tenant: str, name: str | None = None, **about) -> dict:
        """Store ``model`` as the next version of ``name``; returns the metadata (with ``id``).

        ``about``: the ``upload`` keywords (job_id, preprocessing, classes, metrics...)."""
        name = name or "model"
        version = self.registry.next_version(tenant, name)
        pending = self.upload(model, tenant=tenant, name=name, version=version, **about)
        pipe = self.redis.pipeline()
        self.publish(pending, pipe)
        pipe.execute()
        return pending.metadata

    def upload(
        self,
        model: nnlib.Model,
        *,
        tenant: str,
        job_id: str | None,
        name: str,
        version: int,
        preprocessing: dict | None = None,
        classes: list[str] | None = None,
        num_classes: int | None = None,
        metrics: dict | None = None,
        dataset: dict | None = None,
        label_column: str | None = None,
        source: str = "job",
        description: str = "",
        tags: dict | None = None,
    ) -> PendingModel:
        """Upload ``model``'s weights as ``version`` of ``name``; nothing is visible until
        ``publish`` (an unpublished upload is an unreferenced object the collector removes)."""
        model_id = "mdl_" + secrets.token_hex(8)
        metadata = {
            "id": model_id,
            "tenant": tenant,
            "job_id": job_id,
            "name": name,
            "version": version,
            "source": source,
            "dataset": dataset,
            "label_column": label_column,
            "architecture": model.spec,
            "input_shape": list(model.input_shape),
            "output_shape": list(model.output_shape),
            "num_parameters": model.num_parameters(),
            "classes": classes,
            "num_classes": num_classes,
            "preprocessing": preprocessing or {},
            "signature": signature(model, classes, preprocessing),
            "metrics": metrics or {},
            "tags": tags or {},
            "description": description,
            "created_at": utc_now(),
        }
        buffer = io.BytesIO()
        nnlib.save(buffer, model, **{k: v for k, v in metadata.items() if k != "architecture"})
        weights = buffer.getbuffer()
        metadata["size_bytes"] = len(weights)
        metadata["weights_key"] = weights_key(model_id)
        record = self.artifacts.upload(weights_key(model_id), weights, owner=model_key(model_id))
        return PendingModel(metadata, record)

    def publish(self, pending: PendingModel, pipe) -> None:
        """Queue on ``pipe`` what makes an upload a model: its metadata, its weights' record, its
        place in the tenant's list and its version in the registry (one transaction)."""
        metadata = pending.metadata
        model_id, tenant = metadata["id"], metadata["tenant"]
        pipe.set(model_key(model_id), json.dumps(metadata))
        self.artifacts.publish(pending.record, pipe)
        pipe.zadd(tenant_models_key(tenant), {model_id: time.time()})
        self.registry.register(pipe, tenant, metadata["name"], metadata["version"], model_id)

    def get(self, model_id: str) -> dict | None:
        raw = self.redis.get(model_key(model_id))
        return json.loads(raw) if raw is not None else None

    def weights(self, model_id: str) -> bytes | None:
        """The ``.npz`` file (as written by ``nnlib.save``), or None if there is no such model.

        ArtifactError (naming the object) if the stored weights are missing or damaged.
        """
        weights = self._weights(model_id)
        return bytes(weights) if isinstance(weights, bytearray) else weights

    def _weights(self, model_id: str) -> bytes | bytearray | None:
        """``weights`` without the copy into ``bytes`` (loading a model only parses them)."""
        metadata = self.get(model_id)
        if metadata is None:
            return None
        if "weights_key" not in metadata:
            return self.migrate(model_id)
        return self.artifacts.read(metadata["weights_key"])

    def migrate(self, model_id: str) -> bytes | None:
        """Move an earlier version's Redis-held weights to the artifact store; returns them."""
        legacy = self.redis.get(model_key(model_id) + ":weights")
        if legacy is None:
            return None
        record = self.artifacts.upload(weights_key(model_id), legacy, owner=model_key(model_id))

        def publish(pipe, _metadata: dict) -> None:
            self.artifacts.publish(record, pipe)
            pipe.delete(model_key(model_id) + ":weights")

        # a read-change-write: a concurrent update() of tags must not be overwritten
        written = update_json(
            self.redis,
            model_key(model_id),
            lambda metadata: metadata | {"weights_key": record["key"]},
            publish,
        )
        return legacy if written is not None else None

    def update(self, model_id: str, changes: dict) -> dict | None:
        """Replace ``tags`` / ``description`` (the only mutable fields); None if absent."""
        mutable = {k: changes[k] for k in ("tags", "description") if k in changes}
        return update_json(self.redis, model_key(model_id), lambda metadata: metadata | mutable)

    def list(self, tenant: str, limit: int = 100) -> list[dict]:
        """The tenant's newest ``limit`` models."""
        return self.page(tenant, limit)[0]

    def page(
        self, tenant: str, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[dict], str | None]:
        """Newest first; ``cursor`` is the previous page's next cursor (ValueError if not one)."""
        upper = "+inf" if cursor is None else f"({score_cursor(cursor)!r}"
        rows = self.redis.zrevrangebyscore(
            tenant_models_key(tenant), upper, "-inf", start=0, num=limit + 1, withscores=True
        )
        more, rows = len(rows) > limit, rows[:limit]
        raws = self.redis.mget([model_key(i.decode()) for i, _ in rows]) if rows else []
        found = [json.loads(raw) for raw in raws if raw is not None]
        return found, (repr(rows[-1][1]) if more and rows else None)

    def delete(self, model_id: str) -> bool:
        """Remove the model (its version and aliases in the registry, its id from its job's
        record); False if absent."""
        metadata = self.get(model_id)
        if metadata is None:
            return False
        pipe = self.redis.pipeline()
        pipe.delete(model_key(model_id), model_key(model_id) + ":weights")
        pipe.zrem(tenant_models_key(metadata["tenant"]), model_id)
        self.artifacts.unpublish(weights_key(model_id), pipe)
        pipe.execute()
        self.artifacts.delete_object(weights_key(model_id))
        if metadata.get("version") is not None:
            self.registry.unregister(metadata["tenant"], metadata["name"], metadata["version"])
        if metadata.get("job_id"):
            JobStore(self.redis).forget_model(metadata["job_id"], model_id)
        return True

    def load_model(self, model_id: str) -> tuple[nnlib.Model, dict]:
        """(Model, metadata); KeyError if the model does not exist."""
        metadata = self.get(model_id)
        weights = self._weights(model_id)
        if metadata is None or weights is None:
            raise KeyError(model_id)
        model, _ = nnlib.load(io.BytesIO(weights))
        return model, metadata
