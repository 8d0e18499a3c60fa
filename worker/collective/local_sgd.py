"""Local SGD (``sync_every: k``): replicas step on their own slice, then average every k steps.

Between syncs each shard applies the optimizer to its own slice's gradient (no communication);
every k steps, and at each epoch end, the replicas average their parameters AND optimizer state
(weighted by the samples each shard saw since the last sync), so they are identical again. With
plain SGD and k = 1 this equals gradient averaging (the update is linear in the gradient); the
worker still uses exact gradient averaging for k = 1. One allreduce per k steps instead of per step.
"""

from __future__ import annotations

import numpy as np

from worker.replica import FlatGradients, slice_sizes


class LocalSGD:
    """Bookkeeping between syncs and the sync itself for one shard."""

    def __init__(self, every: int, num_shards: int, shard: int):
        self.every, self.num_shards, self.shard = every, num_shards, shard
        self.reset()

    def reset(self) -> None:
        self.loss_sum, self.samples = 0.0, 0
        self.weights = np.zeros(self.num_shards)

    def record(self, batch_len: int, slice_loss: float | None) -> None:
        """After a local step on this shard's slice of a ``batch_len`` global batch."""
        sizes = slice_sizes(batch_len, self.num_shards)
        self.weights += sizes
        if slice_loss is not None:
            self.loss_sum += slice_loss * sizes[self.shard]
            self.samples += sizes[self.shard]

    def due(self, global_step: int, end_of_epoch: bool) -> bool:
        return end_of_epoch or global_step % self.every == 0

    def sync(self, allreduce, name: str, model, optimizer) -> tuple[float, int]:
        """Average parameters and optimizer state across shards; -> (mean loss, samples)."""
        parameters = model.parameters()
        state = optimizer.state_dict()
        averaged = sync_arrays(parameters, state)
        flat = FlatGradients(averaged, extra=1)
        flat.pack(averaged)
        flat.extra[0] = self.loss_sum / self.samples if self.samples else 0.0
        allreduce(name, flat.buffer, list(self.weights))
        if not np.isfinite(flat.buffer).all():
            raise FloatingPointError(f"loss or weights became {float(flat.extra[0])}")
        for key, array in parameters.items():
            np.copyto(array, flat.views[f"p/{key}"])
        for key in state:
            if f"o/{key}" in flat.views:
                state[key] = flat.views[f"o/{key}"].copy()
        optimizer.load_state_dict(state)
        result = float(flat.extra[0]), int(self.weights.sum())
        self.reset()
        return result


def sync_arrays(parameters: dict, optimizer_state: dict) -> dict[str, np.ndarray]:
    """What a sync averages: parameters (``p/<name>``) and float optimizer state (``o/<key>``)."""
    averaged = {f"p/{k}": v for k, v in parameters.items()}
    averaged.update({f"o/{k}": v for k, v in optimizer_state.items() if v.dtype.kind == "f"})
    return averaged
