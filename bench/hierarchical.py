"""Hierarchical exchange against the flat TCP mesh: 2 hosts x 2 shards, same links, same run.

Builds the multi-host harness (``tests/multihost``: root only): a control host with Redis and two
worker hosts, each running one Celery worker with 2 pool processes (1 BLAS thread each). Per link
rate and round it trains the Fashion-MNIST MLP 784-256-128-10 (global batch ``--batch``) on
4 shards twice, alternating: workers on ``auto`` (which picks ``hierarchical``: shared memory
inside a host, TCP between the two leaders) and workers forced to ``tcp`` (every shard a peer of
the flat mesh). For each job: samples/s and step time of the fastest epoch after the first,
communication ms per step, and the bytes each host sent and received over its link per training
step (the bridge end of its veth pair: every byte that left or entered the host, control traffic
included) next to the gradient's size S. Then each round's hierarchical/flat step-time ratio.
Run: ``sudo python bench/hierarchical.py [--rates 1000,10000] [--repeat 2] [--epochs 2]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scaling import run_job  # noqa: E402
from tests.multihost.cluster import Cluster, missing_privileges  # noqa: E402
from tests.multihost.site import Site  # noqa: E402

SHARDS, PER_HOST = 4, 2
GRADIENT_BYTES = 235_146 * 4 + 4  # the MLP's float32 gradient and the loss slot: S


def link_bytes(host) -> tuple[int, int]:
    """(sent, received) by ``host`` so far: its veth's bridge end sees them the other way."""
    stats = Path("/sys/class/net") / host.link / "statistics"
    return int((stats / "rx_bytes").read_text()), int((stats / "tx_bytes").read_text())


def one_job(site: Site, transport: str, batch: int, epochs: int) -> dict:
    hosts = site.workers[:2]
    for host in hosts:
        site.start_worker(host, concurrency=PER_HOST, GRADQ_BLAS_THREADS="1",
                          GRADQ_ALLREDUCE_TRANSPORT=transport)  # fmt: skip
    try:
        before = [link_bytes(h) for h in hosts]
        record = run_job(site.client, SHARDS, batch, epochs)
        after = [link_bytes(h) for h in hosts]
    finally:
        site.stop()
    best = max(record["history"][1:] or record["history"], key=lambda h: h["samples_per_second"])
    steps = record["steps_total"]
    sent = [(a[0] - b[0]) / steps for a, b in zip(after, before, strict=True)]
    received = [(a[1] - b[1]) / steps for a, b in zip(after, before, strict=True)]
    return {
        "transport": best["transport"],
        "samples_per_second": best["samples_per_second"],
        "step_ms": batch / best["samples_per_second"] * 1e3,
        "comm_ms": best["comm_seconds"] / (steps // epochs) * 1e3,
        "sent_per_step_S": max(sent) / GRADIENT_BYTES,
        "received_per_step_S": max(received) / GRADIENT_BYTES,
        "test_accuracy": record["metrics"]["test_accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="1000,10000", help="link rates, Mbit/s")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2, help="alternating rounds")
    parser.add_argument("--epochs", type=int, default=2, help="fastest epoch after the first")
    args = parser.parse_args()
    reason = missing_privileges()
    if reason:
        sys.exit(f"bench/hierarchical.py {reason}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Cluster(3) as cluster:
        site = Site(cluster, Path(tmp))
        for rate in (float(r) for r in args.rates.split(",")):
            cluster.shape(rate)
            for round_ in range(args.repeat):
                for transport in ("auto", "tcp"):
                    row = one_job(site, transport, args.batch, args.epochs)
                    rows.append(row | {"rate": rate, "round": round_})
                    print(json.dumps(rows[-1]), flush=True)
    report(rows)


def report(rows: list[dict]) -> None:
    print(
        "\n| link | transport | samples/s | step ms | comm ms | sent/host/step | "
        "received/host/step | test accuracy |\n" + "|---" * 8 + "|"
    )
    for row in rows:
        print(
            f"| {row['rate'] / 1000:g} Gbit/s | {row['transport']} "
            f"| {row['samples_per_second']:,.0f} | {row['step_ms']:.1f} | {row['comm_ms']:.2f} "
            f"| {row['sent_per_step_S']:.2f} S | {row['received_per_step_S']:.2f} S "
            f"| {row['test_accuracy']:.3f} |"
        )
    for rate in dict.fromkeys(r["rate"] for r in rows):
        pairs = [
            [r["step_ms"] for r in rows if r["rate"] == rate and r["round"] == k]
            for k in sorted({r["round"] for r in rows})
        ]
        ratios = [hier / flat for hier, flat in pairs]
        print(
            f"{rate / 1000:g} Gbit/s: hierarchical/flat step time {statistics.median(ratios):.2f}x "
            f"(rounds {', '.join(f'{x:.2f}' for x in ratios)}); S = {GRADIENT_BYTES:,} bytes"
        )


if __name__ == "__main__":
    main()
