"""Where a cross-host step's time goes: gradq's pieces timed phase by phase, next to DDP's.

Builds the multi-host harness (root only) and runs on each of N hosts one process of
``bench/step_profile_peer.py``, which trains with gradq's own parts (``nnlib`` forward/backward,
``FlatGradients``, ``TcpMesh`` over the hosts' shaped links, the job's optimizer; 1 BLAS thread)
or with PyTorch DDP (gloo), and times each phase of every step. Prints the median ms per phase
per system and host count, with the machine's load. Not a training benchmark (no Celery, no
checkpoints): it answers "compute, exchange, wait, optimizer or overhead?".
Run: ``sudo python bench/step_profile.py [--rate 1000] [--hosts 2,3] [--model mlp|cnn]
[--overlap no,yes]``.
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

from tests.harness import worker_env  # noqa: E402
from tests.multihost.cluster import Cluster, HostRedis, missing_privileges, python_argv  # noqa: E402

PORTS = itertools.count(29700)


def profile(cluster, redis, system: str, hosts: int, overlap: bool, args) -> list[dict]:
    script = str(Path(__file__).resolve().parent / "step_profile_peer.py")
    workers = cluster.hosts[1 : 1 + hosts]
    master = f"{workers[0].address}:{next(PORTS)}"
    env = worker_env(redis.url, GLOO_SOCKET_IFNAME="eth0", OMP_NUM_THREADS="1")
    key = f"profile:{system}:{hosts}:{next(PORTS)}"
    argv = [system, str(hosts), master, key, str(args.batch), str(args.steps), args.model]
    argv += [args.compression, "overlap" if overlap else "plain"]
    peers = [
        host.popen(python_argv(script, str(rank), *argv), env=env, stdout=subprocess.PIPE)
        for rank, host in enumerate(workers)
    ]
    rows = []
    for peer in peers:
        out, _ = peer.communicate(timeout=600)
        if peer.returncode != 0:
            raise RuntimeError(f"{system} peer exited with {peer.returncode}")
        rows.append(json.loads(out.decode().strip().splitlines()[-1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="link rate, Mbit/s")
    parser.add_argument("--hosts", default="2,3")
    parser.add_argument("--batch", type=int, default=1024, help="global batch")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    parser.add_argument("--systems", default="gradq,ddp")
    parser.add_argument("--compression", default="none")
    parser.add_argument("--overlap", default="no", help="gradq variants: no, yes or no,yes")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    reason = missing_privileges()
    if reason:
        sys.exit(f"bench/step_profile.py {reason}")
    hosts = [int(h) for h in args.hosts.split(",")]
    with tempfile.TemporaryDirectory() as tmp, Cluster(1 + max(hosts), args.rate) as cluster:
        redis = HostRedis(cluster.hosts[0], Path(tmp) / "redis")
        print(f"load before: {os.getloadavg()}", flush=True)
        print(describe(), flush=True)
        runs = [
            (system, overlap == "yes")
            for system in args.systems.split(",")
            for overlap in (args.overlap.split(",") if system == "gradq" else ["no"])
        ]
        for _, n, (system, overlap) in itertools.product(range(args.repeat), hosts, runs):
            rows = profile(cluster, redis, system, n, overlap, args)
            phases = {k: max(r[k] for r in rows) for k in rows[0] if k.endswith("_ms")}
            cells = "  ".join(f"{k[:-3]} {v:.2f}" for k, v in phases.items())
            if "select_rounds" in rows[0]:  # gradq's waits: select() calls per step, per host
                cells += "  select_rounds " + "/".join(f"{r['select_rounds']:g}" for r in rows)
            system = system + (" overlap" if overlap else "")
            print(f"{system:13s} {args.model} {n} hosts {args.rate:g} Mbit/s: {cells}", flush=True)
        print(f"load after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
