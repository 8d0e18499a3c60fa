"""The training part of bench/scaling.py's report: one row per variant, paired efficiencies.

A row is (shards, transport, option, samples/s, comm s/step, test accuracy, cores/proc).
"""

from __future__ import annotations

import os

PARAMS = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10  # 235,146, the bench's MLP


def fastest_per_variant(rows: list[tuple]) -> list[tuple]:
    """One row per (shards, transport, option): its fastest run, in first-seen order."""
    best: dict[tuple, tuple] = {}
    for row in rows:
        if row[:3] not in best or row[3] > best[row[:3]][3]:
            best[row[:3]] = row
    return list(best.values())


def paired_efficiencies(rows: list[tuple], shards: int) -> list[float]:
    """thr(N) / (N thr(1)) of each plain N-shard run against the 1-shard run just before it:
    both saw nearly the same machine, unlike the fastest of each taken from different times."""
    out, last_single = [], None
    for n, _, label, throughput, *_ in rows:
        if label:
            continue
        if n == 1:
            last_single = throughput
        elif n == shards and last_single is not None:
            out.append(throughput / (n * last_single))
    return out


def print_training(rows, raw: tuple[float, float], raw_n: dict[int, float], batch: int) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\nFashion-MNIST MLP 784-256-128-10 ({PARAMS:,} params, {PARAMS * 4 / 1e6:.2f} MB of "
        f"gradient), global batch {batch}, 1 BLAS thread per shard"
    )
    print(f"{os.cpu_count()} cores, load average {load} (other processes compete)")
    print(
        f"raw Redis SET+GET of one gradient: {raw[0] * 1e3:.2f} ms with redis-py's parser, "
        f"{raw[1] * 1e3:.2f} ms read into one buffer (worker.collective.resp; 'x raw' uses "
        "this one); "
        "by N clients at once ('x raw N', the bytes and concurrency of the Redis exchange): "
        + ", ".join(f"N={n} {t * 1e3:.2f} ms" for n, t in raw_n.items())
        + "\n"
    )
    print(
        f"{'shards':>6} {'transport':<9} {'option':<13} {'samples/s':>10} {'efficiency':>10} "
        f"{'comm ms/step':>12} {'x raw':>6} {'x raw N':>7} {'test acc':>8} {'cores/proc':>10}"
    )
    base = rows[0][3]
    for shards, transport, label, throughput, comm, accuracy, cores in rows:
        ratio = f"{comm / raw[1]:6.2f}" if shards > 1 else f"{'-':>6}"
        ratio_n = f"{comm / raw_n[shards]:7.2f}" if shards in raw_n else f"{'-':>7}"
        print(
            f"{shards:>6} {transport:<9} {label:<13} {throughput:>10.0f} "
            f"{throughput / (shards * base):>10.2f} {comm * 1e3:>12.2f} {ratio} {ratio_n} "
            f"{accuracy:>8.4f} {cores:>10.2f}"
        )
    print(
        "comm = time in allreduce per step, including waiting for the slower shard (with "
        "overlap: the part not hidden behind backward; sync_every 4: averaged over steps); "
        "cores/proc = CPU time of the busiest pool process / the job's wall time (<= 1: "
        "no shard runs more than one thread's worth of work)"
    )
