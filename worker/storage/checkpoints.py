"""Training checkpoints as artifacts: one object per save, the newest ``keep`` of a job kept.

Format (``GRADQCK1``): 8 magic bytes, a little-endian uint64 header length, a UTF-8 JSON header
(``arrays``: ``[name, dtype, shape, offset]`` per array; ``meta``: epoch, batch, global_step,
history, early-stopping and RNG state), then the raw arrays at 64-byte aligned offsets. Names are
``model/<name>`` and ``optim/<key>``. No zip and no CRC: the record's SHA-256 already covers every
byte, so saving costs one pass over the arrays and loading is one checked read plus views.
The job's list ``gradq:job:{id}:checkpoints`` holds object keys, oldest first, and owns their
records: deleting it (the job succeeded, or was deleted) leaves orphans the collector removes.
When a job ends, ``KEPT_WHEN_ENDED`` says how many of its checkpoints stay.
"""

from __future__ import annotations

import io
import json
import secrets
import struct

import numpy as np
import redis as redis_lib

from worker.storage.artifacts import ArtifactStore
from worker.storage.base import ArtifactCorruptError

MAGIC = b"GRADQCK1"
ALIGN = 64
LIST_TTL_SECONDS = 30 * 24 * 3600
# checkpoints a job keeps once it ends, by final status: ``jobs resume`` restarts a failed or
# cancelled job from its newest checkpoint (older ones would never be read); nothing resumes a
# succeeded job, whose model is stored
KEPT_WHEN_ENDED = {"succeeded": 0, "failed": 1, "cancelled": 1}


def checkpoints_key(job_id: str) -> str:
    return f"gradq:job:{job_id}:checkpoints"


def encode_parts(model_state: dict, optimizer_state: dict, meta: dict) -> list:
    """The checkpoint as a list of buffers (the arrays themselves, not copies)."""
    named = [(f"model/{k}", v) for k, v in model_state.items()]
    named += [(f"optim/{k}", v) for k, v in optimizer_state.items()]
    arrays = [(name, np.asarray(value, order="C")) for name, value in named]  # keeps 0-d shapes
    entries, offset = [], 0
    for name, array in arrays:
        entries.append([name, array.dtype.str, list(array.shape), offset])
        offset += _padded(array.nbytes)
    header = json.dumps({"arrays": entries, "meta": meta}).encode()
    header += b" " * (_padded(16 + len(header)) - 16 - len(header))
    parts: list = [MAGIC + struct.pack("<Q", len(header)), header]
    for _, array in arrays:
        parts.append(memoryview(array).cast("B") if array.nbytes else b"")
        parts.append(b"\0" * (_padded(array.nbytes) - array.nbytes))
    return parts


def decode(data: bytearray | bytes, where: str = "checkpoint") -> tuple[dict, dict, dict]:
    """-> (model_state, optimizer_state, meta); arrays are views into ``data``."""
    if data[:8] != MAGIC:
        raise ArtifactCorruptError(f"{where} is not a gradq checkpoint")
    (length,) = struct.unpack("<Q", data[8:16])
    header = json.loads(bytes(data[16 : 16 + length]))
    start, model, optim = 16 + length, {}, {}
    for name, dtype, shape, offset in header["arrays"]:
        dtype = np.dtype(dtype)
        if dtype.kind not in "biuf":  # the header is ours, but never build object arrays
            raise ArtifactCorruptError(f"{where}: array {name} has dtype {dtype}")
        count = int(np.prod(shape, dtype=np.int64))
        array = np.frombuffer(data, dtype, count, start + offset).reshape(tuple(shape))
        target = model if name.startswith("model/") else optim
        target[name[6:]] = array
    return model, optim, header["meta"]


def save_checkpoint(
    store: ArtifactStore,
    job_id: str,
    model_state: dict,
    optimizer_state: dict,
    meta: dict,
    *,
    fence,
    keep: int = 2,
) -> dict:
    """Upload a checkpoint, then publish it as the job's newest and unlist all but the newest
    ``keep`` (>= 1) in one transaction through ``fence`` (``worker.fence.AttemptFence`` for a
    shard: refused with StaleAttemptError once its attempt is stale, leaving only an unreferenced
    object for the collector). The unlisted checkpoints' objects are deleted afterwards."""
    step = int(meta.get("global_step", 0))
    key = f"checkpoints/{job_id}/{step:010d}-{secrets.token_hex(4)}.ckpt"
    parts = encode_parts(model_state, optimizer_state, meta)
    record = store.upload(key, parts, owner=_owner(job_id))
    listing, unlisted = checkpoints_key(job_id), []

    def plan(pipe):
        listed = [_text(k) for k in pipe.lrange(listing, 0, -1)]
        if key in listed:  # a replay after EXEC's reply was lost: it is published already
            unlisted[:] = []
            return None
        unlisted[:] = (listed + [key])[:-keep]

        def queue(pipe) -> None:
            store.publish(record, pipe)
            pipe.rpush(listing, key)
            pipe.ltrim(listing, -keep, -1)
            pipe.expire(listing, LIST_TTL_SECONDS)
            for old in unlisted:
                store.unpublish(old, pipe)

        return queue

    fence.commit_after([listing], plan)
    for old in unlisted:
        store.delete_object(old)
    return record


def load_checkpoint(store: ArtifactStore, job_id: str) -> tuple[dict, dict, dict] | None:
    """The job's newest checkpoint, checked (ArtifactError naming it if it is damaged), or None."""
    key = store.redis.lindex(checkpoints_key(job_id), -1)
    if key is None:
        return _legacy_checkpoint(store.redis, job_id)
    key = _text(key)
    return decode(store.read(key), where=f"checkpoint {key!r}")


def load_checkpoint_meta(store: ArtifactStore, job_id: str) -> dict | None:
    """The newest checkpoint's ``meta`` (epoch, global_step, ...) or None, read from the head of
    the object only: enough to describe a resume. The full, checked read happens when the shards
    load it (a damaged checkpoint fails the resumed job, naming the object)."""
    key = store.redis.lindex(checkpoints_key(job_id), -1)
    if key is None:
        legacy = _legacy_checkpoint(store.redis, job_id)
        return legacy[2] if legacy is not None else None
    key, head = _text(key), bytearray()
    for chunk in store.backend.read(key, chunk_bytes=64 * 1024):
        head += chunk
        if len(head) >= 16 and len(head) >= 16 + struct.unpack("<Q", head[8:16])[0]:
            break
    if head[:8] != MAGIC or len(head) < 16:
        raise ArtifactCorruptError(f"checkpoint {key!r} is not a gradq checkpoint")
    (length,) = struct.unpack("<Q", head[8:16])
    if len(head) < 16 + length:
        raise ArtifactCorruptError(f"checkpoint {key!r} is truncated inside its header")
    return json.loads(bytes(head[16 : 16 + length]))["meta"]


def keep_checkpoints(store: ArtifactStore, job_id: str, keep: int) -> list[str]:
    """Remove all but the job's newest ``keep`` checkpoints (0: all); returns removed keys.

    Safe to run while a save publishes, or twice at once (a job ending while shard 0 saves):
    the list is WATCHed, so a key pushed between reading and trimming makes it count again
    instead of trimming an entry whose record it did not drop (a record no list would own).
    """
    name = checkpoints_key(job_id)
    with store.redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(name)
                old = [_text(k) for k in pipe.lrange(name, 0, -keep - 1 if keep else -1)]
                if not old:
                    return []
                pipe.multi()
                if keep:
                    pipe.ltrim(name, -keep, -1)
                else:
                    pipe.delete(name)
                for key in old:
                    store.unpublish(key, pipe)
                pipe.execute()
                break
            except redis_lib.WatchError:
                continue
    for key in old:
        store.delete_object(key)
    return old


def settle_checkpoints(store: ArtifactStore, job_id: str, status: str) -> list[str]:
    """Apply ``KEPT_WHEN_ENDED`` for a job that ended with ``status``; returns removed keys.

    ``JobStore.update`` runs it when a job fails or is cancelled; a save cannot land after that
    (the attempt fence refuses it), and one landing just before is counted (the trim WATCHes the
    list). KeyError for a status that is not terminal.
    """
    return keep_checkpoints(store, job_id, KEPT_WHEN_ENDED[status])


def checkpoint_keys(store: ArtifactStore, job_id: str) -> list[str]:
    """The job's checkpoint object keys, oldest first."""
    return [_text(k) for k in store.redis.lrange(checkpoints_key(job_id), 0, -1)]


def has_checkpoint(redis, job_id: str) -> bool:
    """Does the job have a checkpoint a resume could start from (listed, or a legacy one)?"""
    return bool(redis.llen(checkpoints_key(job_id))) or bool(
        redis.exists(f"gradq:job:{job_id}:checkpoint")
    )


def _legacy_checkpoint(redis, job_id: str) -> tuple[dict, dict, dict] | None:
    """A checkpoint the previous version kept in Redis as one npz (a job running at upgrade)."""
    data = redis.get(f"gradq:job:{job_id}:checkpoint")
    if data is None:
        return None
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        model = {k[6:]: npz[k] for k in npz.files if k.startswith("model/")}
        optim = {k[6:]: npz[k] for k in npz.files if k.startswith("optim/")}
        meta = json.loads(npz["meta"].tobytes().decode())
    return model, optim, meta


def remove_objects(store: ArtifactStore, keys: list[str]) -> None:
    """Drop the records and objects of checkpoints no longer listed (e.g. after a success)."""
    for key in keys:
        store.remove(key)


def _owner(job_id: str) -> str:
    return checkpoints_key(job_id)


def _padded(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value
