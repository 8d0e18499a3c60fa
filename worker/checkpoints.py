"""Training checkpoints in Redis: one ``.npz`` (no pickle) per job, overwritten atomically.

Arrays: ``model/<name>`` (parameters and buffers), ``optim/<key>`` (optimizer state) and ``meta``
(UTF-8 JSON as uint8: epoch, batch, global_step, history, early-stopping and RNG state).
"""

from __future__ import annotations

import io
import json

import numpy as np
import redis as redis_lib

CHECKPOINT_TTL_SECONDS = 30 * 24 * 3600


def checkpoint_key(job_id: str) -> str:
    return f"gradq:job:{job_id}:checkpoint"


def encode_checkpoint(model_state: dict, optimizer_state: dict, meta: dict) -> bytes:
    arrays = {f"model/{k}": np.asarray(v) for k, v in model_state.items()}
    arrays.update({f"optim/{k}": np.asarray(v) for k, v in optimizer_state.items()})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def decode_checkpoint(data: bytes) -> tuple[dict, dict, dict]:
    """-> (model_state, optimizer_state, meta)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        model = {k[6:]: npz[k] for k in npz.files if k.startswith("model/")}
        optim = {k[6:]: npz[k] for k in npz.files if k.startswith("optim/")}
        meta = json.loads(npz["meta"].tobytes().decode())
    return model, optim, meta


def save_checkpoint(redis: redis_lib.Redis, job_id: str, data: bytes) -> None:
    redis.set(checkpoint_key(job_id), data, ex=CHECKPOINT_TTL_SECONDS)


def load_checkpoint(redis: redis_lib.Redis, job_id: str) -> tuple[dict, dict, dict] | None:
    data = redis.get(checkpoint_key(job_id))
    return decode_checkpoint(data) if data is not None else None


def load_checkpoint_meta(redis: redis_lib.Redis, job_id: str) -> dict | None:
    """The checkpoint's ``meta`` (epoch, global_step, ...) without decoding its arrays, or None."""
    data = redis.get(checkpoint_key(job_id))
    if data is None:
        return None
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:  # members load lazily
        return json.loads(npz["meta"].tobytes().decode())


def delete_checkpoint(redis: redis_lib.Redis, job_id: str) -> None:
    redis.delete(checkpoint_key(job_id))
