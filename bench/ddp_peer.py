"""One rank of the PyTorch DDP (gloo) reference of ``bench/multihost.py``, run on a harness host.

Same model (``bench/multihost_models.py``: the MLP or the CNN), optimizer (SGD lr 0.05
momentum 0.9), global batch and data (gradq's ``load_dataset``, so the same split and scaling)
as the gradq job; each rank takes its contiguous slice of every global batch, 1 intra-op
thread. Epoch 1 warms up; the fastest later epoch is reported. Rank 0 prints one JSON line:
samples/s, step seconds, test accuracy. Bench only: torch is never a runtime dependency.
Run: ``python bench/ddp_peer.py RANK WORLD MASTER_ADDR:PORT BATCH EPOCHS MODEL``.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from bench.multihost_models import torch_model
    from nnlib.batching import global_batches, shard_slice
    from worker.datasets import load_dataset

    rank, world, master, batch, epochs, model_name = sys.argv[1:7]
    rank, world, batch, epochs = int(rank), int(world), int(batch), int(epochs)
    torch.set_num_threads(1)
    data = load_dataset({"name": "fashion-mnist"}, seed=0)
    x = torch.from_numpy(np.ascontiguousarray(data.x_train))  # (N, 1, 28, 28)
    y = torch.from_numpy(data.y_train.astype(np.int64))
    dist.init_process_group(
        "gloo", init_method=f"tcp://{master}", rank=rank, world_size=world,
        timeout=timedelta(seconds=300),
    )  # fmt: skip
    torch.manual_seed(0)
    model = torch_model(model_name)
    ddp = DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    best = None
    for epoch in range(epochs):
        batches = global_batches(len(x), batch, 0, epoch)
        dist.barrier()
        started = time.perf_counter()
        for index in batches:
            mine = torch.from_numpy(index[shard_slice(len(index), world, rank)])
            loss = loss_fn(ddp(x[mine]), y[mine])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        seconds = time.perf_counter() - started
        if epoch > 0 or epochs == 1:
            best = seconds if best is None else min(best, seconds)
    if rank == 0:
        with torch.no_grad():
            x_test = torch.from_numpy(np.ascontiguousarray(data.x_test))
            scores = torch.cat([model(part) for part in torch.split(x_test, 1000)])
            accuracy = float((scores.argmax(1).numpy() == data.y_test).mean())
        steps = len(global_batches(len(x), batch, 0, 0))
        print(
            json.dumps(
                {
                    "samples_per_second": len(x) / best,
                    "step_seconds": best / steps,
                    "test_accuracy": accuracy,
                }
            ),
            flush=True,
        )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
