"""gradq across hosts against PyTorch DDP (gloo), on the same hosts and links, in the same run.

Builds the multi-host harness (``tests/multihost``: root only): a control host with Redis and
three worker hosts (own hostname, /dev/shm, network; links shaped with tc tbf), one Celery
worker per host (concurrency 1, 1 BLAS thread). For each link rate and global batch it trains
the Fashion-MNIST MLP 784-256-128-10 (SGD momentum) on 1, 2, 3 hosts x 1 shard with gradq, then
the same with DDP (``bench/ddp_peer.py``, 1 thread per rank), alternating, ``--repeat`` times:
samples/s and step time of the fastest epoch after the first, gradq's communication time per
step, efficiency thr(N) / (N thr(1)) against the 1-host run of the same round, and each round's
gradq/DDP step-time ratio (paired: both ran on nearly the same machine). ``--options`` adds
2-host rows with ``overlap``, ``compression`` bf16 or fp16, ``sync_every: 4`` (speed, accuracy).
Run: ``sudo python bench/multihost.py [--rates 1000,10000] [--batches 1024,256] [--repeat 2]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scaling import run_job  # noqa: E402
from tests.harness import worker_env  # noqa: E402
from tests.multihost.cluster import Cluster, missing_privileges, python_argv  # noqa: E402
from tests.multihost.site import Site, forget_connections  # noqa: E402

DDP_PORTS = itertools.count(29500)
OPTIONS = {
    "overlap": {"overlap": True},
    "bf16": {"compression": "bf16"},
    "fp16": {"compression": "fp16"},
    "sync 4": {"sync_every": 4},
}


def gradq_row(site: Site, hosts: int, batch: int, epochs: int, **extra) -> dict:
    record = run_job(site.client, hosts, batch, epochs, **extra)
    best = max(record["history"][1:] or record["history"], key=lambda h: h["samples_per_second"])
    steps = record["steps_total"] // epochs
    return {
        "samples_per_second": best["samples_per_second"],
        "step_seconds": batch / best["samples_per_second"],
        "comm_seconds": best["comm_seconds"] / steps,
        "test_accuracy": record["metrics"]["test_accuracy"],
        "transport": best["transport"],
    }


def ddp_row(site: Site, hosts: int, batch: int, epochs: int) -> dict:
    """DDP with one rank on each of the first ``hosts`` worker hosts (gloo over their eth0)."""
    master = f"{site.workers[0].address}:{next(DDP_PORTS)}"
    script = str(Path(__file__).resolve().parent / "ddp_peer.py")
    env = worker_env(site.redis.url, GLOO_SOCKET_IFNAME="eth0", OMP_NUM_THREADS="1")
    ranks = [
        host.popen(
            python_argv(script, str(rank), str(hosts), master, str(batch), str(epochs)),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for rank, host in enumerate(site.workers[:hosts])
    ]
    out, _ = ranks[0].communicate(timeout=900)
    for rank in ranks[1:]:
        rank.wait(60)
    if ranks[0].returncode != 0:
        raise RuntimeError(f"DDP rank 0 exited with {ranks[0].returncode}")
    return json.loads(out.decode().strip().splitlines()[-1])


def measure(site, rates, batches, host_counts, repeat, epochs, options) -> list[dict]:
    rows = []
    for rate in rates:
        site.cluster.shape(rate)
        for batch, round_ in itertools.product(batches, range(repeat)):
            for hosts in host_counts:
                for system in ("gradq", "ddp"):
                    run = gradq_row if system == "gradq" else ddp_row
                    row = run(site, hosts, batch, epochs)
                    rows.append(row | dict(rate=rate, batch=batch, hosts=hosts, round=round_,
                                           system=system, option=""))  # fmt: skip
                    print(json.dumps(rows[-1]), flush=True)
            if options and batch == batches[0]:
                for option, extra in OPTIONS.items():
                    row = gradq_row(site, 2, batch, epochs, **extra)
                    rows.append(row | dict(rate=rate, batch=batch, hosts=2, round=round_,
                                           system="gradq", option=option))  # fmt: skip
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def report(rows: list[dict], host_counts: list[int]) -> None:
    def find(**match):
        return [r for r in rows if all(r[k] == v for k, v in match.items())]

    print(
        "\n| link | batch | hosts | gradq samples/s | gradq step ms | comm ms | gradq eff "
        "| DDP samples/s | DDP step ms | DDP eff | gradq/DDP step (paired) | accuracy gradq/DDP |"
    )
    print("|---" * 12 + "|")
    for rate, batch in dict.fromkeys((r["rate"], r["batch"]) for r in rows):
        for hosts in host_counts:
            cells, ratios, effs = {}, [], {"gradq": [], "ddp": []}
            for system in ("gradq", "ddp"):
                runs = find(rate=rate, batch=batch, hosts=hosts, system=system, option="")
                cells[system] = max(runs, key=lambda r: r["samples_per_second"])
                for run in runs:
                    single = find(rate=rate, batch=batch, hosts=1, system=system, option="",
                                  round=run["round"])  # fmt: skip
                    if single:
                        base = single[0]["samples_per_second"]
                        effs[system].append(run["samples_per_second"] / (hosts * base))
            for g in find(rate=rate, batch=batch, hosts=hosts, system="gradq", option=""):
                d = find(rate=rate, batch=batch, hosts=hosts, system="ddp", round=g["round"])
                ratios.append(g["step_seconds"] / d[0]["step_seconds"])
            g, d = cells["gradq"], cells["ddp"]
            print(
                f"| {rate / 1000:g} Gbit/s | {batch} | {hosts} | {g['samples_per_second']:,.0f} "
                f"| {g['step_seconds'] * 1e3:.1f} | {g['comm_seconds'] * 1e3:.2f} "
                f"| {_median(effs['gradq'])} | {d['samples_per_second']:,.0f} "
                f"| {d['step_seconds'] * 1e3:.1f} | {_median(effs['ddp'])} "
                f"| **{statistics.median(ratios):.2f}x** ({', '.join(f'{x:.2f}' for x in ratios)}) "
                f"| {g['test_accuracy']:.3f} / {d['test_accuracy']:.3f} |"
            )
    for row in (r for r in rows if r["option"]):
        print(
            f"option {row['option']}: {row['rate'] / 1000:g} Gbit/s batch {row['batch']} 2 hosts "
            f"round {row['round']}: {row['samples_per_second']:,.0f} samples/s, comm "
            f"{row['comm_seconds'] * 1e3:.2f} ms/step, test accuracy {row['test_accuracy']:.3f}"
        )


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="1000,10000", help="link rates, Mbit/s")
    parser.add_argument("--batches", default="1024,256")
    parser.add_argument("--hosts", default="1,2,3")
    parser.add_argument("--repeat", type=int, default=2, help="alternating rounds")
    parser.add_argument("--epochs", type=int, default=3, help="fastest epoch after the first")
    parser.add_argument("--options", action="store_true", help="overlap/fp16/sync_every rows")
    args = parser.parse_args()
    reason = missing_privileges()
    if reason:
        sys.exit(f"bench/multihost.py {reason}")
    host_counts = [int(h) for h in args.hosts.split(",")]
    rates = [float(r) for r in args.rates.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory() as tmp, Cluster(1 + max(host_counts)) as cluster:
        site = Site(cluster, Path(tmp))
        try:
            for host in site.workers:
                site.start_worker(host, GRADQ_BLAS_THREADS="1")
            rows = measure(
                site, rates, batches, host_counts, args.repeat, args.epochs, args.options
            )
        finally:
            site.stop()
            forget_connections(site.app)
    report(rows, host_counts)


if __name__ == "__main__":
    main()
