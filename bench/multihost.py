"""gradq across hosts against PyTorch DDP (gloo), on the same hosts and links, in the same run.

Builds the multi-host harness (``tests/multihost``: root only): a control host with Redis and three
worker hosts (own hostname, /dev/shm, network; links shaped with tc tbf), one Celery worker per
host (concurrency 1, 1 BLAS thread). For each model (``bench/multihost_models.py``: the
Fashion-MNIST MLP 784-256-128-10 and the CNN conv32-pool-conv64-pool-128-10, SGD momentum), link
rate and global batch it trains on 1, 2, 3 hosts x 1 shard with gradq (each ``--variants`` row:
plain = ``overlap: false``, ``overlap`` = forced on, ``default`` = the spec's overlap left out,
i.e. measured per attempt), then DDP (``bench/ddp_peer.py``, 1 thread per rank), ``--repeat``
rounds whose order alternates: samples/s and step time of the fastest epoch after the first (every
epoch's step time is in the JSON row), gradq's communication time per step, efficiency
thr(N) / (N thr(1)) against the 1-host run of the same round, each round's gradq/DDP step-time
ratio (paired: both ran on nearly the same machine) and each multi-host cell's wire floor
(``multihost_report``). The 1-minute load average is recorded with every run. ``--options`` adds
2-host rows with ``compression`` bf16/fp16/zstd and ``sync_every: 4`` (speed, accuracy).
Run: ``sudo python bench/multihost.py`` (the whole matrix: about 1.5 h on a quiet 2-core
machine, mostly the CNN), ``--quick`` (MLP, 1 Gbit/s, batch 1024, 1 round: ~1 min), or any
subset with ``--models --rates --batches --hosts --repeat --epochs``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.blas_kernels import describe, use_this_cpus_kernels  # noqa: E402

use_this_cpus_kernels()  # before NumPy loads OpenBLAS

from bench.multihost_models import MODELS, model_spec  # noqa: E402
from bench.multihost_report import print_report  # noqa: E402
from bench.scaling import run_job  # noqa: E402
from tests.harness import worker_env  # noqa: E402
from tests.multihost.cluster import Cluster, missing_privileges, python_argv  # noqa: E402
from tests.multihost.site import Site, forget_connections  # noqa: E402
from worker.job_logs import read_logs  # noqa: E402

DDP_PORTS = itertools.count(29500)
# gradq rows at every host count: plain, overlap forced on, and the default (unset: measured)
VARIANTS = {"": {"overlap": False}, "overlap": {"overlap": True}, "default": {}}
OPTIONS = {"bf16": {"compression": "bf16"}, "fp16": {"compression": "fp16"},
           "zstd": {"compression": "zstd"}, "sync 4": {"sync_every": 4}}  # fmt: skip


def gradq_row(site: Site, model: str, hosts: int, batch: int, epochs: int, **extra) -> dict:
    record = run_job(site.client, hosts, batch, epochs, model=model_spec(model), **extra)
    best = max(record["history"][1:] or record["history"], key=lambda h: h["samples_per_second"])
    steps = record["steps_total"] // epochs
    return {
        "samples_per_second": best["samples_per_second"],
        "step_seconds": batch / best["samples_per_second"],
        "epoch_step_seconds": [batch / h["samples_per_second"] for h in record["history"]],
        "comm_seconds": best["comm_seconds"] / steps,
        "test_accuracy": record["metrics"]["test_accuracy"],
        "transport": best["transport"],
        "overlap": record["history"][-1].get("overlap"),  # what a measuring attempt chose
        "measured": [  # and why (shard 0's job-log line)
            line["message"]
            for line in read_logs(site.client, record["id"], count=10_000)
            if line["message"].startswith("overlap measured")
        ],
    }


def ddp_row(site: Site, model: str, hosts: int, batch: int, epochs: int) -> dict:
    """DDP with one rank on each of the first ``hosts`` worker hosts (gloo over their eth0)."""
    master = f"{site.workers[0].address}:{next(DDP_PORTS)}"
    script = str(Path(__file__).resolve().parent / "ddp_peer.py")
    env = worker_env(site.redis.url, GLOO_SOCKET_IFNAME="eth0", OMP_NUM_THREADS="1")
    argv = [str(hosts), master, str(batch), str(epochs), model]
    ranks = [
        host.popen(
            python_argv(script, str(rank), *argv),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for rank, host in enumerate(site.workers[:hosts])
    ]
    out, _ = ranks[0].communicate(timeout=3600)
    for rank in ranks[1:]:
        rank.wait(120)
    if ranks[0].returncode != 0:
        raise RuntimeError(f"DDP rank 0 exited with {ranks[0].returncode}")
    return json.loads(out.decode().strip().splitlines()[-1])


def measure(site: Site, args) -> list[dict]:
    """Every run of the matrix as one dict (also printed as a JSON line when it ends)."""
    rows = []
    runs = [("gradq", v) for v in args.variants] + [("ddp", "")]

    def run(model, rate, batch, hosts, round_, system, variant, extra, epochs):
        if system == "ddp":
            row = ddp_row(site, model, hosts, batch, epochs)
        else:
            row = gradq_row(site, model, hosts, batch, epochs, **extra)
        row |= dict(model=model, rate=rate, batch=batch, hosts=hosts, round=round_,
                    system=system, variant=variant, load=os.getloadavg()[0])  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)

    for model, rate in itertools.product(args.models, args.rates):
        site.cluster.shape(rate)
        epochs = args.cnn_epochs if model == "cnn" else args.epochs
        for batch, round_ in itertools.product(args.batches, range(args.repeat)):
            for hosts in args.hosts:
                # one shard has nothing to overlap, but every variant's efficiency needs its run
                here = runs if hosts > 1 else [("gradq", ""), ("ddp", "")]
                order = here if round_ % 2 == 0 else here[::-1]  # neither side always first
                for system, variant in order:
                    extra = VARIANTS.get(variant, {})
                    run(model, rate, batch, hosts, round_, system, variant, extra, epochs)
            if args.options and batch == args.batches[0] and 2 in args.hosts:
                for option, extra in OPTIONS.items():
                    run(model, rate, batch, 2, round_, "gradq", option, extra, epochs)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="mlp,cnn", help=f"among {','.join(MODELS)}")
    parser.add_argument("--rates", default="1000,10000", help="link rates, Mbit/s")
    parser.add_argument("--batches", default="1024,256")
    parser.add_argument("--hosts", default="1,2,3")
    parser.add_argument("--variants", default=",overlap,default",
                        help="gradq rows: '' (plain), overlap, default")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=2, help="alternating rounds")
    parser.add_argument("--epochs", type=int, default=6, help="MLP; fastest after the first")
    parser.add_argument("--cnn-epochs", type=int, default=2, help="CNN; fastest after the first")
    parser.add_argument("--options", action="store_true", help="bf16/fp16/zstd/sync_every rows")
    parser.add_argument("--quick", action="store_true", help="MLP, 1 Gbit/s, batch 1024, 1 round")
    parser.add_argument("--json", help="also write every run to this file")
    args = parser.parse_args()
    if args.quick:
        args.models, args.rates, args.batches, args.repeat = "mlp", "1000", "1024", 1
    args.models = args.models.split(",")
    args.rates = [float(r) for r in args.rates.split(",")]
    args.batches = [int(b) for b in args.batches.split(",")]
    args.hosts = [int(h) for h in args.hosts.split(",")]
    args.variants = args.variants.split(",")
    reason = missing_privileges()
    if reason:
        sys.exit(f"bench/multihost.py {reason}")
    print(f"load average at start: {os.getloadavg()}", flush=True)
    print(describe(), flush=True)
    with tempfile.TemporaryDirectory() as tmp, Cluster(1 + max(args.hosts)) as cluster:
        site = Site(cluster, Path(tmp))
        try:
            for host in site.workers:
                site.start_worker(host, GRADQ_BLAS_THREADS="1")
            rows = measure(site, args)
        finally:
            site.stop()
            forget_connections(site.app)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(f"load average at end: {os.getloadavg()}")
    print_report(rows)


if __name__ == "__main__":
    main()
