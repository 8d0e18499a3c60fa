"""One synchronous training step of a shard: exact gradient averaging, or a local-SGD step.

Both fail the job with ``TrainingError`` when the loss or the gradient stops being finite; with
exact averaging every shard sees the same (averaged) values, so they all stop at the same step.
"""

from __future__ import annotations

import numpy as np

import nnlib
from worker.allreduce import RING_MIN_ELEMENTS
from worker.overlap import overlapped_gradients
from worker.replica import FlatGradients, slice_sizes


class TrainingError(RuntimeError):
    """The training itself went wrong (NaN loss, ...): the job fails with this message."""


def exact_step(ctx, flat: FlatGradients, replica, index, mine, step: int, epoch: int) -> float:
    """Gradient of my slice -> weighted mean over shards -> the same update everywhere."""
    data = replica.data
    weights = slice_sizes(len(index), ctx.num_shards)
    # Overlap hides Redis transfers behind backward; through shared memory the whole exchange
    # takes ~0.1-0.3 ms, less than bucketing costs, so on that transport the option is moot.
    overlap = bool(replica.spec.get("overlap")) and flat.buffer.size < RING_MIN_ELEMENTS
    overlap = overlap and ctx.transport == "redis"
    if ctx.num_shards > 1 and overlap:
        overlapped_gradients(
            ctx, flat, replica, data.x_train[mine], data.y_train[mine], weights, step
        )
    else:
        if len(mine):
            batch_loss, gradients = nnlib.loss_and_gradients(
                replica.model, replica.loss, data.x_train[mine], data.y_train[mine]
            )
            flat.pack(gradients)
            flat.extra[0] = batch_loss
        else:  # an empty slice counts with weight 0
            flat.buffer[:] = 0.0
        ctx.allreduce(str(step), flat.buffer, weights)
    if not np.isfinite(flat.buffer).all():
        diverged(
            "loss" if not np.isfinite(flat.extra[0]) else "gradient", flat.extra[0], epoch, step
        )
    replica.optimizer.step(flat.views, lr=replica.schedule(step))
    return float(flat.extra[0])


def local_step(replica, mine, step: int, epoch: int) -> float | None:
    """Local SGD: update with my slice's own gradient (None: my slice is empty)."""
    if not len(mine):
        return None
    batch_loss, gradients = nnlib.loss_and_gradients(
        replica.model, replica.loss, replica.data.x_train[mine], replica.data.y_train[mine]
    )
    if not np.isfinite(batch_loss):
        diverged("loss", batch_loss, epoch, step)
    replica.optimizer.step(gradients, lr=replica.schedule(step))
    return float(batch_loss)


def diverged(what: str, value, epoch: int, step: int):
    raise TrainingError(
        f"{what} became {float(value)} at epoch {epoch + 1} step {step + 1} "
        "(learning rate too high?)"
    )
