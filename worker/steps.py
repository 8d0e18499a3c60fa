"""One synchronous training step of a shard: exact gradient averaging, or a local-SGD step.

Both fail the job with ``TrainingError`` when the loss or the gradient stops being finite; with
exact averaging every shard sees the same (averaged) values, so they all stop at the same step.
"""

from __future__ import annotations

import numpy as np

import nnlib
from worker.collective.allreduce import RING_MIN_ELEMENTS
from worker.collective.overlap import overlapped_gradients
from worker.collective.overlap_choice import OverlapChoice, timed_step
from worker.collective.update_pipeline import UpdatePipeline, pipeline_applies
from worker.replica import FlatGradients, slice_sizes


class TrainingError(RuntimeError):
    """The training itself went wrong (NaN loss, ...): the job fails with this message."""


def overlap_applies(requested: bool | None, transport: str, small: bool) -> bool | str:
    """Whether a step sends buckets during backward: the spec's ``overlap`` on ``transport``;
    ``"measure"``: unset over tcp, where each attempt times both (``OverlapChoice``).

    ``small``: the vector is below the ring's size, so Redis carries it in one message.
    """
    # Overlap hides network transfers behind backward; through shared memory the whole exchange
    # takes ~0.1-0.3 ms, less than bucketing costs, so on that transport the option is moot.
    # Over tcp it pays on slow links and loses on fast ones (overlap_choice.py), and both give
    # the same bits, so unset means "measure and take the faster".
    if requested is None:
        return "measure" if transport == "tcp" else False
    return requested and (transport == "tcp" or (transport == "redis" and small))


def exact_step(
    ctx, flat: FlatGradients, replica, rows, batch_len: int, step: int, epoch: int, prefetch=None
) -> float:
    """Gradient of my slice -> weighted mean over shards -> the same update everywhere.

    ``rows`` = (x, y) of my slice of a global batch of ``batch_len`` samples; ``prefetch()``
    (gathers the next step's rows) runs while the allreduce waits for the peers. Returns the
    global batch's mean loss.
    """
    weights = slice_sizes(batch_len, ctx.num_shards)
    overlap = _overlap_mode(ctx, replica, flat)
    args = (ctx, flat, replica, rows, weights, step, epoch, prefetch)
    if ctx.num_shards > 1 and overlap == "measure":
        choice = replica.overlap_choice = replica.overlap_choice or OverlapChoice()
        loss = timed_step(choice, flat, lambda overlap: _step(*args, overlap))
        if ctx.shard == 0 and choice.steps == choice.decided_at + 1 and choice.changed:
            ctx.fence.log(choice.explain(), ctx.shard)  # the first decision, or a new path
        return loss
    return _step(*args, ctx.num_shards > 1 and overlap is True)


def overlap_in_use(ctx, replica, flat: FlatGradients) -> bool | None:
    """For the epoch history: whether steps now overlap their exchange; None with one shard or
    while the attempt is still measuring."""
    if ctx.num_shards <= 1:
        return None
    overlap = _overlap_mode(ctx, replica, flat)
    if overlap == "measure":
        return None if replica.overlap_choice is None else replica.overlap_choice.decided
    return bool(overlap)


def overlap_ignored(ctx, replica, flat: FlatGradients, local_sgd: bool) -> str | None:
    """The job-log line for a spec's ``overlap: true`` that this attempt cannot apply (its steps
    then exchange after backward, with the same bits), or None when it applies or is not set."""
    if replica.spec.get("overlap") is not True:
        return None
    if ctx.num_shards <= 1:
        why = "one shard has nothing to exchange"
    elif local_sgd:
        why = "local SGD (sync_every) exchanges weights between steps, not gradients"
    elif _overlap_mode(ctx, replica, flat) is True:
        return None
    elif ctx.transport == "shm":
        why = "the shards share a host: shared memory exchanges the whole vector in ~0.3 ms"
    elif ctx.transport == "redis":
        why = f"through Redis it applies below {RING_MIN_ELEMENTS:,} parameters only"
    else:
        why = f"the {ctx.transport} transport exchanges after backward"
    return f"overlap: true has no effect on this attempt: {why}"


def _overlap_mode(ctx, replica, flat: FlatGradients) -> bool | str:
    """``overlap_applies`` for this job's spec, transport and gradient size."""
    small = flat.buffer.size < RING_MIN_ELEMENTS
    return overlap_applies(replica.spec.get("overlap"), ctx.transport, small)


def _step(ctx, flat, replica, rows, weights, step, epoch, prefetch, overlap: bool) -> float:
    x, y = rows
    if overlap:
        if ctx.mesh is not None and pipeline_applies(replica.model, replica.optimizer):
            return _pipelined_step(ctx, flat, replica, rows, weights, step, epoch, prefetch)
        overlapped_gradients(ctx, flat, replica, x, y, weights, step)
        if prefetch is not None:
            prefetch()
    else:
        if len(x):
            batch_loss, gradients = nnlib.loss_and_gradients(replica.model, replica.loss, x, y)
            flat.pack(gradients)
            flat.extra[0] = batch_loss
        else:  # an empty slice counts with weight 0
            flat.buffer[:] = 0.0
        ctx.allreduce(str(step), flat.buffer, weights, idle=prefetch)
    if not np.isfinite(flat.buffer).all():
        diverged(
            "loss" if not np.isfinite(flat.extra[0]) else "gradient", flat.extra[0], epoch, step
        )
    replica.optimizer.step(flat.views, lr=replica.schedule(step))
    return float(flat.extra[0])


def _pipelined_step(ctx, flat, replica, rows, weights, step: int, epoch: int, prefetch) -> float:
    """``exact_step`` over tcp with the update pipeline: the parameters are updated range by
    range as the exchange completes them, and the next step's first layer is computed then.

    The primed output is used only by the step it was made for, on the very rows it was made
    from (``SliceRows.get`` hands out the prefetched array itself): anything else in between
    (an epoch's end, a resume) recomputes it, with the same bits.
    """
    x, y = rows
    primed, replica.primed = replica.primed, None
    if primed is not None and (primed[0] != step or primed[1] is not x):
        primed = None
    x_next = None
    pipeline: UpdatePipeline | None = None

    def start(ranges) -> UpdatePipeline:  # the ranges come from the exchange's bucket plan
        nonlocal pipeline, x_next
        x_next = prefetch() if prefetch is not None else None  # while the buckets travel
        pipeline = UpdatePipeline(
            flat,
            ranges,
            replica.model,
            replica.optimizer,
            replica.schedule(step),
            x_next,
            lambda what: diverged(what, flat.extra[0], epoch, step),
        )
        return pipeline

    overlapped_gradients(
        ctx, flat, replica, x, y, weights, step, primed=None if primed is None else primed[2],
        pipeline=start,
    )  # fmt: skip
    output = pipeline.next_output()
    if output is not None:
        replica.primed = (step + 1, x_next, output)
    return float(flat.extra[0])


def local_step(replica, rows, step: int, epoch: int) -> float | None:
    """Local SGD: update with my slice's own gradient (None: my slice is empty)."""
    x, y = rows
    if not len(x):
        return None
    batch_loss, gradients = nnlib.loss_and_gradients(replica.model, replica.loss, x, y)
    if not np.isfinite(batch_loss):
        diverged("loss", batch_loss, epoch, step)
    replica.optimizer.step(gradients, lr=replica.schedule(step))
    return float(batch_loss)


def diverged(what: str, value, epoch: int, step: int):
    raise TrainingError(
        f"{what} became {float(value)} at epoch {epoch + 1} step {step + 1} "
        "(learning rate too high?)"
    )
