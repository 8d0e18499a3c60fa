"""One rank of ``bench/step_profile.py``: train a few steps and time every phase of each step.

gradq: rows gather, forward+backward (``nnlib.loss_and_gradients``, or the overlapped
``backward_by_group`` with each bucket allreduced by a sender thread), pack into
``FlatGradients``, ``TcpMesh.allreduce`` (scale, send, wait, shard-order sum), optimizer step.
DDP (gloo): forward, backward (DDP's bucketed allreduce runs inside it), optimizer, and the
same model's backward without DDP measured alone (compute only). Prints one JSON line of
median milliseconds per phase. Bench only: torch is never a runtime dependency of gradq.
Run by step_profile.py: ``python bench/step_profile_peer.py RANK SYSTEM WORLD MASTER KEY BATCH
STEPS MODEL COMPRESSION OVERLAP``.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.multihost_models import model_spec, torch_model  # noqa: E402

CLOCK = time.perf_counter


def kernel_seconds() -> float:
    """CPU seconds this process spent in the kernel (getrusage: sampled at ticks, so only a
    mean over many steps means anything)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def summary(times: dict[str, list[float]]) -> dict[str, float]:
    """Median ms of every phase, and the mean step: a training epoch's time is the mean, which
    a few slow steps (a descheduled peer, a collection) raise while the median ignores them."""
    out = {f"{k}_ms": statistics.median(v) for k, v in times.items()}
    out["step_mean_ms"] = statistics.fmean(times["step"])
    return out


def epochs_of_batches(samples: int, batch: int, count: int) -> list[np.ndarray]:
    """``count`` global batches' indices, epoch after epoch (one epoch of Fashion-MNIST at
    batch 1024 is only 59 steps)."""
    from nnlib.batching import global_batches

    batches: list[np.ndarray] = []
    epoch = 0
    while len(batches) < count:
        batches += global_batches(samples, batch, 0, epoch)
        epoch += 1
    return batches[:count]


def count_select_rounds(mesh) -> list[int]:
    """Count the mesh's select() calls (the rounds of its waits) in the returned one-item list:
    each round is a syscall plus Python bookkeeping, CPU the hosts' shared cores pay for."""
    rounds = [0]
    select = mesh.selector.select

    def counted(timeout=None):
        rounds[0] += 1
        return select(timeout)

    mesh.selector.select = counted
    return rounds


def gradq(rank, world, key, batch, steps, model_name, compression, overlap) -> dict:
    from types import SimpleNamespace

    import redis as redis_lib

    import nnlib
    from nnlib.batching import shard_slice
    from worker.collective.overlap import overlapped_gradients
    from worker.collective.tcp_transport import TcpMesh
    from worker.collective.transport import listen_address
    from worker.config import Settings
    from worker.datasets import load_dataset
    from worker.huge_pages import advise_huge_pages
    from worker.replica import FlatGradients, slice_sizes
    from worker.threads import thread_budget

    settings = Settings()
    spec = model_spec(model_name)
    data = load_dataset({"name": "fashion-mnist"}, seed=0)
    model = nnlib.build_model(spec, data.input_shape, seed=0)
    loss = nnlib.losses.get("cross_entropy")
    optimizer = nnlib.optimizers.build(
        {"type": "sgd", "lr": 0.05, "momentum": 0.9}, model.parameters()
    )
    flat = FlatGradients(model.parameters())
    redis = redis_lib.Redis.from_url(settings.redis_url)
    mesh = TcpMesh(
        rank, world, listen_address(settings), None if compression == "none" else compression
    )
    mesh.connect(redis, key, 60, None)
    rounds = count_select_rounds(mesh)
    times: dict[str, list[float]] = {}
    ctx = SimpleNamespace(
        data=redis,
        key=lambda name: f"{key}:{name}",
        settings=SimpleNamespace(peer_timeout_seconds=60),
        check_while_waiting=None,
        mesh=mesh,
        shard=rank,
        comm_seconds=0.0,
    )
    replica = SimpleNamespace(model=model, loss=loss)

    def mark(name, started):
        now = CLOCK()
        times.setdefault(name, []).append((now - started) * 1e3)
        return now

    weights = slice_sizes(batch, world)
    with thread_budget(Settings(blas_threads=1), spec):
        batches = epochs_of_batches(len(data.x_train), batch, steps + 5)
        per_step, rounds_before, kernel_ms = [], rounds[0], []
        for b, index in enumerate(batches):
            if b == 1:  # as the shard loop does after its first step
                advise_huge_pages()
            if b == 5:
                times.clear()  # warm-up
            started = step_started = CLOCK()
            cpu_started, sys_started = time.process_time(), kernel_seconds()
            mine = index[shard_slice(len(index), world, rank)]
            x, y = data.x_train[mine], data.y_train[mine]
            started = mark("gather", started)
            if overlap:
                waited = ctx.comm_seconds
                overlapped_gradients(ctx, flat, replica, x, y, weights, b)
                times.setdefault("exposed_exchange", []).append((ctx.comm_seconds - waited) * 1e3)
                started = mark("overlapped_step", started)
            else:
                value, grads = nnlib.loss_and_gradients(model, loss, x, y)
                started = mark("forward_backward", started)
                flat.pack(grads)
                flat.extra[0] = value
                flat.buffer *= flat.buffer.dtype.type(weights[rank] / batch)
                started = mark("pack", started)
                mesh.allreduce(flat.buffer, 60, None)
                started = mark("exchange", started)
            optimizer.step(flat.views, lr=0.05)
            started = mark("optimizer", started)
            mark("step", step_started)
            times.setdefault("step_cpu", []).append((time.process_time() - cpu_started) * 1e3)
            kernel_ms.append((kernel_seconds() - sys_started) * 1e3)
            per_step.append(rounds[0] - rounds_before)
            rounds_before = rounds[0]
    mesh.close()
    out = summary(times)
    out["select_rounds"] = statistics.median(per_step[5:])
    out["step_kernel_ms"] = statistics.fmean(kernel_ms[5:])  # a mean: see kernel_seconds
    out["bytes"] = flat.buffer.nbytes
    return out


def ddp(rank, world, master, batch, steps, model_name) -> dict:
    from datetime import timedelta

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from nnlib.batching import shard_slice
    from worker.datasets import load_dataset

    torch.set_num_threads(1)
    data = load_dataset({"name": "fashion-mnist"}, seed=0)
    x_all = torch.from_numpy(np.ascontiguousarray(data.x_train))
    y_all = torch.from_numpy(data.y_train.astype(np.int64))
    dist.init_process_group("gloo", init_method=f"tcp://{master}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=120))  # fmt: skip
    torch.manual_seed(0)
    model = torch_model(model_name)
    wrapped = DistributedDataParallel(model)
    optimizer = torch.optim.SGD(wrapped.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    times: dict[str, list[float]] = {}

    def mark(name, started):
        now = CLOCK()
        times.setdefault(name, []).append((now - started) * 1e3)
        return now

    batches = epochs_of_batches(len(x_all), batch, steps + 5)
    for b, index in enumerate(batches):
        if b == 5:
            times.clear()
        started = step_started = CLOCK()
        cpu_started = time.process_time()
        mine = torch.from_numpy(index[shard_slice(len(index), world, rank)])
        x, y = x_all[mine], y_all[mine]
        started = mark("gather", started)
        loss = loss_fn(wrapped(x), y)
        started = mark("forward", started)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        started = mark("backward+allreduce", started)
        optimizer.step()
        started = mark("optimizer", started)
        mark("step", step_started)
        times.setdefault("step_cpu", []).append((time.process_time() - cpu_started) * 1e3)
        # compute only: the same backward without DDP's hooks
        started = CLOCK()
        alone = loss_fn(model(x), y)
        model.zero_grad(set_to_none=True)
        alone.backward()
        mark("compute_alone", started)
    dist.destroy_process_group()
    return summary(times)


def main() -> None:
    rank, system, world, master, key, batch, steps, model_name, compression, overlap = sys.argv[1:]
    rank, world, batch, steps = int(rank), int(world), int(batch), int(steps)
    if system == "gradq":
        out = gradq(rank, world, key, batch, steps, model_name, compression, overlap == "overlap")
    else:
        out = ddp(rank, world, master, batch, steps, model_name)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
