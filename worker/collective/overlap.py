"""Overlap of communication with the backward pass (job spec ``"overlap": true``).

Backward runs layer group by layer group from the output down; as soon as a bucket of gradients
is final (``bucket_plan``: a group, or a row block of the first dense layer, which an MLP
computes last and which holds most of its parameters) it is pre-scaled by this shard's weight
and sent while the main thread computes the earlier layers.
- ``tcp``: the main thread itself hands each bucket to the kernel (``TcpMesh.posted``; no
  sender thread to schedule on a busy CPU) and waits once after backward: the same
  shard-order sums as ``TcpMesh.allreduce``, so the same bits, at any size.
- ``redis`` (below ``RING_MIN_ELEMENTS`` parameters): a sender thread pushes the buckets to the
  leader, which sums them in shard order and sends the mean back in one message (bit-identical
  to ``allreduce_mean(..., "leader")``); with two shards both push to each other and each sums
  locally (the ``exchange``): one transfer after backward instead of two.
- ``shm``: not applied; the whole-vector exchange after backward takes ~0.1-0.3 ms, less than
  the bucketing itself (bench/scaling.py N=2: overlapped buckets through Redis 1.8-2.4 ms/step,
  the shm exchange 0.3-0.5).
It is a job option (not a worker setting) because every shard of a job must speak the same
protocol. Row blocks are used only where this BLAS gives them the whole product's bits
(``blocks_keep_bits``), so an overlapped job trains bit for bit like a plain one.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from nnlib import gemm
from nnlib.layers.dense import INPUT_BLOCK_BYTES, Dense, input_row_blocks
from nnlib.parallel import blas_serial, get_num_threads
from worker.collective.allreduce import Channel, sum_in_shard_order
from worker.replica import FlatGradients

# a first dense layer's weight gradient above this ships in row blocks (nnlib's forward blocks)
BLOCK_BYTES = INPUT_BLOCK_BYTES


@dataclass(frozen=True)
class Bucket:
    """A range [start, stop) of the flat gradient that backward finishes at once: a spec group's
    gradients, or ``rows`` (start, stop) of the first dense layer's weight gradient."""

    start: int
    stop: int
    group: int
    rows: tuple[int, int] | None = None


def bucket_plan(model, flat: FlatGradients, block_bytes: int = BLOCK_BYTES) -> list[Bucket]:
    """The buckets in the order backward finishes them (the same on every shard: it depends on
    the model only), output group first; that one extends to the buffer's end (the loss slot).

    Backward ends with the first trainable layer, the input layer of an MLP and most of its
    parameters: if it is a dense layer whose weight gradient exceeds ``block_bytes``, its rows
    go in blocks of about ``block_bytes`` (last rows first, the bias with them), so the first
    blocks travel while the last are computed instead of the whole layer after backward.
    """
    spans = []
    for index, _layers in model.groups:
        names = [k for k in flat.offsets if k.split(".", 1)[0] == str(index)]
        if names:
            ranges = [flat.offsets[k] for k in names]
            spans.append((index, min(a for a, _ in ranges), max(b for _, b in ranges)))
    spans.sort(key=lambda span: span[1], reverse=True)
    plan = [Bucket(start, stop, index) for index, start, stop in spans]
    plan[0] = Bucket(plan[0].start, flat.buffer.size, plan[0].group)
    first = _first_trainable(model)
    weight = flat.views.get(f"{plan[-1].group}.W")
    if isinstance(first, Dense) and weight is not None:
        group_layers = dict(model.groups)[plan[-1].group]
        if [layer for layer in group_layers if layer.params] == [first]:
            # nnlib's forward blocks (Dense.input_blocks) by the same rule: with the default
            # size the rows a bucket updates are the rows the next forward's block reads
            blocks = input_row_blocks(*weight.shape, weight.itemsize, block_bytes)
            if blocks is not None:
                plan[-1:] = _row_buckets(plan[-1], flat, weight.shape[1], blocks)
    return plan


def _row_buckets(group: Bucket, flat: FlatGradients, units: int, blocks) -> list[Bucket]:
    """One bucket per row block, in ``blocks``' order (last rows first): the bias (after W in
    the buffer) rides with the last rows."""
    start = flat.offsets[f"{group.group}.W"][0]
    last = max(b for _, b in blocks)
    return [
        Bucket(
            start + a * units, group.stop if b == last else start + b * units, group.group, (a, b)
        )
        for a, b in blocks
    ]


def blocks_keep_bits(samples: int, weight_shape, ranges, dtype) -> bool:
    """Whether row blocks of x^T dout (x: (samples, rows), dout: (samples, units), W: (rows,
    units)) give the bits of the whole product with this BLAS, CPU and thread setting.

    Every row is its own dot product over the samples, so a GEMM's kernels give the same bits
    (seen on every shape tried), but a BLAS may pick another kernel for a thin block (a one-row
    block becomes a GEMV): then the overlap path would drift from the plain one. Checked once
    per shape and setting (a few ms).
    """
    threads = (get_num_threads(), blas_serial())
    return _blocks_keep_bits(samples, tuple(weight_shape), tuple(ranges), np.dtype(dtype), threads)


@functools.cache
def _blocks_keep_bits(samples, weight_shape, ranges, dtype, _threads) -> bool:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((samples, weight_shape[0])).astype(dtype)
    dout = rng.standard_normal((samples, weight_shape[1])).astype(dtype)
    whole = gemm.dot(x.T, dout)
    return all(np.array_equal(gemm.dot(x[:, a:b].T, dout), whole[a:b]) for a, b in ranges)


def _first_trainable(model):
    return next((layer for layer in model.layers if layer.params), None)


def backward_buckets(model, dout: np.ndarray, flat: FlatGradients, plan: list[Bucket]):
    """Like ``Model.backward(dout, input_grad=False)``, copying the gradients into ``flat`` and
    yielding each bucket's index in ``plan`` once its range of ``flat`` is final."""
    layers = model.layers
    owner = [index for index, group in model.groups for _ in group]
    first = next((i for i, layer in enumerate(layers) if layer.params), len(layers))
    group_layers = dict(model.groups)
    by_group: dict[int, list[int]] = {}
    for k, bucket in enumerate(plan):
        by_group.setdefault(bucket.group, []).append(k)
    dout = np.asarray(dout, dtype=model.dtype)
    for i in range(len(layers) - 1, first - 1, -1):
        group = owner[i]
        buckets = by_group.get(group, [])
        if i == first and plan[buckets[0]].rows is not None:
            layer, prefix = layers[i], f"{group}."
            ranges = [plan[k].rows for k in buckets]
            if blocks_keep_bits(len(dout), layer.params["W"].shape, ranges, model.dtype):
                blocks = layer.backward_row_blocks(dout, ranges)
            else:  # the same buckets (the peers expect them), computed in one product
                layer.backward(dout, input_grad=False)
                blocks = iter(ranges)
            for n, (k, (a, b)) in enumerate(zip(buckets, blocks, strict=True)):
                if n == 0 and "b" in layer.grads:
                    np.copyto(flat.views[prefix + "b"], layer.grads["b"])
                np.copyto(flat.views[prefix + "W"][a:b], layer.grads["W"][a:b])
                yield k
            return
        dout = layers[i].backward(dout, input_grad=i > first)
        if (i == first or owner[i - 1] != group) and buckets:
            for layer in group_layers[group]:  # only this group's gradients, not the model's
                for name, grad in layer.grads.items():
                    np.copyto(flat.views[f"{group}.{name}"], grad)
            yield buckets[0]


class _Sender(threading.Thread):
    """Runs ``send(bucket, array)`` for each queued bucket in the background, in order: a push
    to the leader through Redis, or a whole allreduce of the bucket over the TCP mesh."""

    def __init__(self, send):
        super().__init__(daemon=True, name="gradq-bucket-sender")
        self.send = send
        self.queue: queue.Queue = queue.Queue()
        self.error: BaseException | None = None

    def run(self) -> None:
        while (item := self.queue.get()) is not None:
            try:
                self.send(*item)
            except BaseException as error:  # surfaced by finish() in the main thread
                self.error = error
                return

    def finish(self) -> None:
        self.queue.put(None)
        self.join()
        if self.error is not None:
            raise self.error


def overlapped_gradients(
    ctx,
    flat: FlatGradients,
    replica,
    x,
    y,
    weights,
    step: int,
    block_bytes: int = BLOCK_BYTES,
    primed=None,
    pipeline=None,
) -> None:
    """Fill ``flat`` with the slice-weighted mean gradient (and loss, ``flat.extra[0]``) over
    all shards (``block_bytes``: see ``bucket_plan``).

    Over tcp only: ``primed`` is this step's first-layer output computed by the last step's
    pipeline; ``pipeline(plan ranges)`` makes an ``UpdatePipeline`` that updates the model as
    the ranges arrive (the caller then skips its own optimizer step).
    """
    model, loss, me, num_shards = replica.model, replica.loss, ctx.shard, len(weights)
    scale = flat.buffer.dtype.type(weights[me] / float(sum(weights)))
    channel = Channel(
        ctx.data,
        ctx.key(f"o{step}"),
        flat.buffer.dtype,
        ctx.settings.peer_timeout_seconds,
        ctx.check_while_waiting,
        120,
    )
    plan = bucket_plan(model, flat, block_bytes)
    if ctx.mesh is not None:
        _over_tcp(ctx, flat, (model, loss, x, y, primed), plan, scale, channel.check, pipeline)
        return
    if primed is not None or pipeline is not None:
        raise ValueError("primed and pipeline apply to the tcp transport only")
    exchange = num_shards == 2
    to = 1 - me if exchange else 0
    sender = None
    if exchange or me != 0:
        sender = _Sender(lambda bucket, array: channel.send({f"in:{bucket}>{to}:{me}": array}))
        sender.start()
    try:
        for k in _final_buckets(model, loss, x, y, flat, plan):
            segment = flat.buffer[plan[k].start : plan[k].stop]
            segment *= scale
            if sender is not None:
                sender.queue.put((k, segment))
    finally:
        waited = time.perf_counter()
        if sender is not None:
            sender.finish()
    try:
        _gather(channel, flat, plan, me, num_shards)
    finally:
        ctx.comm_seconds += time.perf_counter() - waited


def _final_buckets(model, loss, x, y, flat: FlatGradients, plan: list[Bucket], primed=None):
    """Forward, loss and backward of my slice, yielding each bucket once final in ``flat``
    (an empty slice: zeros, every bucket in plan order, so the peers get what they expect)."""
    if len(x):
        flat.extra[0] = loss.forward(model.forward(x, training=True, primed=primed), y)
        yield from backward_buckets(model, loss.backward(), flat, plan)
    else:
        flat.buffer[:] = 0.0
        yield from range(len(plan))


def _over_tcp(ctx, flat, work, plan, scale, check, pipeline=None) -> None:
    """Each bucket's bytes go to the kernel as soon as backward finishes it, from this thread
    (``TcpMesh.posted``): no sender thread to schedule on a busy CPU, and the socket buffers
    keep the link busy while backward goes on. ``work``: (model, loss, x, y, primed).

    ``pipeline(ranges)`` is made after the last bucket is posted: making it gathers the next
    step's rows, which the wire need not wait for (on a slow link it idles from the last
    bytes of one step to the first of the next). The time its ``on_final`` computes (updates,
    the next forward's blocks) is not counted as communication: the step would do it anyway.
    """
    model, loss, x, y, primed = work
    ranges = [(bucket.start, bucket.stop) for bucket in plan]
    exchange = ctx.mesh.posted(flat.buffer, ranges)
    for k in _final_buckets(model, loss, x, y, flat, plan, primed):
        flat.buffer[plan[k].start : plan[k].stop] *= scale
        exchange.post(k, check)
    on_final = pipeline(ranges) if pipeline is not None else None
    computing = 0.0

    def timed(final: int) -> None:
        nonlocal computing
        started = time.perf_counter()
        try:
            on_final(final)
        finally:
            computing += time.perf_counter() - started

    waited = time.perf_counter()
    try:
        exchange.finish(
            ctx.settings.peer_timeout_seconds, check, timed if on_final is not None else None
        )
    finally:
        ctx.comm_seconds += time.perf_counter() - waited - computing


def _gather(channel: Channel, flat: FlatGradients, plan, me: int, num_shards: int) -> None:
    bounds = [(k, bucket.start, bucket.stop) for k, bucket in enumerate(plan)]
    if num_shards == 2:
        other = 1 - me
        received = channel.receive([f"in:{index}>{me}:{other}" for index, _, _ in bounds])
        for index, start, stop in bounds:
            mine, theirs = flat.buffer[start:stop], received[f"in:{index}>{me}:{other}"]
            sum_in_shard_order([mine, theirs] if me == 0 else [theirs, mine], out=mine)
        return
    if me != 0:
        (result,) = channel.receive([f"out:{me}"]).values()
        flat.buffer[:] = result
        return
    received = channel.receive(
        [f"in:{index}>0:{j}" for j in range(1, num_shards) for index, _, _ in bounds]
    )
    for j in range(1, num_shards):  # shard order, as in allreduce_mean: bit-identical sums
        for index, start, stop in bounds:
            flat.buffer[start:stop] += received[f"in:{index}>0:{j}"]
    channel.send({f"out:{j}": flat.buffer for j in range(1, num_shards)})
