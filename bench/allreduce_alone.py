"""allreduce alone, per algorithm and transport, against raw Redis transfers of the same bytes.

Shards are separate processes (spawn) on this host. References: the raw SET + GET of one vector by
one client (redis-py's parser / ``worker.collective.resp``), and the same SET + GET by N clients
at once (what
the exchange moves: each shard pushes one vector into and pops one out of the single Redis thread,
concurrently; slowest client's median). Used by ``bench/scaling.py``; run alone:
``python bench/allreduce_alone.py [--shards 2,4]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from worker.collective import resp  # noqa: E402
from worker.collective.allreduce import allreduce_mean, as_bytes, data_client  # noqa: E402
from worker.collective.shm_transport import SharedSegments  # noqa: E402

CHOICES = ("leader", "ring", "exchange", "shm")  # shm: the shared-memory transport


def raw_transfer_seconds(url: str, nbytes: int, repeat: int = 50) -> tuple[float, float]:
    """Median SET + GET of ``nbytes`` by one client: (through redis-py's parser, through
    ``worker.collective.resp`` as the allreduce reads)."""
    client = data_client(url)
    payload = as_bytes(np.ones(nbytes // 4, np.float32))

    def redis_py() -> None:
        client.set("bench:raw", payload)
        np.frombuffer(client.get("bench:raw"), np.float32)

    medians = []
    for transfer in (redis_py, lambda: _lean_set_get(client, "bench:raw", payload)):
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            transfer()
            times.append(time.perf_counter() - started)
        medians.append(statistics.median(times))
    client.delete("bench:raw")
    return medians[0], medians[1]


def _lean_set_get(client, key: str, payload) -> None:
    resp.execute(client, [("SET", key, payload)])
    np.frombuffer(resp.execute(client, [("GET", key)])[0], np.float32)


def _raw_client(url, index, nbytes, repeat, barrier, out) -> None:
    client = data_client(url)
    payload = as_bytes(np.ones(nbytes // 4, np.float32))
    times = []
    for _ in range(repeat):
        barrier.wait()  # every client starts its SET + GET at the same moment
        started = time.perf_counter()
        _lean_set_get(client, f"bench:raw:{index}", payload)
        times.append(time.perf_counter() - started)
    out.put(statistics.median(times[repeat // 5 :]))


def concurrent_raw_seconds(url: str, nbytes: int, clients: int, repeat: int = 60) -> float:
    """Median SET + GET of ``nbytes`` when ``clients`` processes each do one at once (slowest
    client's median): the raw cost of the bytes and concurrency of the Redis exchange."""
    ctx = multiprocessing.get_context("spawn")
    out, barrier = ctx.Queue(), ctx.Barrier(clients)
    args = [(url, i, nbytes, repeat, barrier, out) for i in range(clients)]
    return max(_run_processes(ctx, _raw_client, args, out))


def _allreduce_shard(url, index, shards, size, algorithm, steps, out):
    client = data_client(url)
    vector = np.ones(size, np.float32)
    segments = None
    if algorithm == "shm":
        segments = SharedSegments(f"bench{size}x{shards}", 0, index, shards, vector.nbytes)
        segments.connect(client, f"bench:ar:open:{size}:{shards}", 30, None)
    times = []
    for step in range(steps):
        started = time.perf_counter()
        allreduce_mean(
            client,
            f"bench:ar:{algorithm}:{step}",
            vector,
            [1.0] * shards,
            index,
            timeout=30,
            algorithm="auto" if algorithm == "shm" else algorithm,
            shm=segments,
        )
        times.append(time.perf_counter() - started)
    if segments is not None:
        segments.close()
    out.put(statistics.median(times[steps // 5 :]))


def allreduce_seconds(url: str, shards: int, size: int, algorithm: str, steps: int = 60) -> float:
    """Median per-step allreduce time (the slowest shard's) with ``shards`` processes."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    args = [(url, i, shards, size, algorithm, steps, out) for i in range(shards)]
    return max(_run_processes(ctx, _allreduce_shard, args, out))


def _run_processes(ctx, target, args_list, out) -> list:
    procs = [ctx.Process(target=target, args=args) for args in args_list]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join(30)
    return results


def print_allreduce(url: str, shard_counts, sizes) -> None:
    print(
        "\nallreduce alone (median ms per step, slowest shard, separate processes); raw = "
        "SET+GET of one vector read into one buffer, by 1 client and by N clients at once:"
    )
    for size in sizes:
        raw_py, raw_lean = raw_transfer_seconds(url, size * 4)
        for shards in shard_counts:
            times = {a: allreduce_seconds(url, shards, size, a) for a in CHOICES}
            raw_n = concurrent_raw_seconds(url, size * 4, shards)
            cells = "  ".join(f"{a} {t * 1e3:6.2f}" for a, t in times.items())
            print(
                f"  {size:>9,} floats, {shards} shards: {cells} | raw 1 client "
                f"{raw_lean * 1e3:5.2f} (redis-py {raw_py * 1e3:5.2f}), {shards} clients "
                f"{raw_n * 1e3:5.2f}; exchange / raw {shards} clients "
                f"{times['exchange'] / raw_n:4.2f}, shm / raw 1 client "
                f"{times['shm'] / raw_lean:4.2f}"
            )


def main() -> None:
    from tests.harness import RedisServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", default="2,4")
    parser.add_argument("--sizes", default="235146,2000000", help="floats per vector")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis")
        try:
            shard_counts = [int(s) for s in args.shards.split(",")]
            print_allreduce(server.url, shard_counts, [int(s) for s in args.sizes.split(",")])
        finally:
            server.stop()


if __name__ == "__main__":
    main()
