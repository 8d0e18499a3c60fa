"""Overlap of communication with the backward pass (job spec ``"overlap": true``).

Backward runs layer group by layer group from the output down; as soon as a group's gradients are
final, a sender thread pushes them (pre-scaled by this shard's weight) to the leader while the main
thread computes the earlier layers. The leader sums the buckets in shard order and sends the mean
back in one message, so the result is bit-identical to ``allreduce_mean(..., "leader")``. With two
shards both push to each other and each sums locally in shard order (the ``exchange`` of
``allreduce_mean``): one transfer after backward instead of two, same bits. It is a
job option (not a worker setting) because every shard of a job must speak the same protocol; it
applies below ``RING_MIN_ELEMENTS`` parameters (larger models use the ring without overlap).
On the ``tcp`` transport each bucket is one whole ``TcpMesh.allreduce`` run by the sender thread
while backward goes on (elementwise the same shard-order sums, so the same bits), at any size.
It does not apply on shared memory (``shm``): there the whole-vector exchange
after backward takes ~0.1-0.3 ms, less than the bucketing itself, so an overlap job whose shards
share a host trains exactly like a plain one (measured, bench/scaling.py N=2: overlapped buckets
through Redis 1.8-2.4 ms/step, the shm exchange 0.3-0.5).
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np

from worker.collective.allreduce import Channel, sum_in_shard_order
from worker.replica import FlatGradients


def bucket_bounds(model, flat: FlatGradients) -> list[tuple[int, int, int]]:
    """(spec group index, start, stop) of each group's gradients in ``flat``, output group first.

    The output-most bucket extends to the end of the buffer, so it carries the loss slot too.
    """
    bounds = []
    for index, _layers in model.groups:
        spans = [flat.offsets[k] for k in flat.offsets if k.split(".", 1)[0] == str(index)]
        if spans:
            bounds.append((index, min(a for a, _ in spans), max(b for _, b in spans)))
    bounds.sort(key=lambda item: item[1], reverse=True)
    index, start, _ = bounds[0]
    bounds[0] = (index, start, flat.buffer.size)
    return bounds


def backward_by_group(model, dout: np.ndarray):
    """Like ``Model.backward(dout, input_grad=False)``, yielding each spec group index once its
    gradients are final (groups come output first)."""
    layers = model.layers
    owner = [index for index, group in model.groups for _ in group]
    first = next((i for i, layer in enumerate(layers) if layer.params), len(layers))
    dout = np.asarray(dout, dtype=model.dtype)
    for i in range(len(layers) - 1, first - 1, -1):
        dout = layers[i].backward(dout, input_grad=i > first)
        if i == first or owner[i - 1] != owner[i]:
            yield owner[i]


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


def overlapped_gradients(ctx, flat: FlatGradients, replica, x, y, weights, step: int) -> None:
    """Fill ``flat`` with the slice-weighted mean gradient (and loss, last slot) over all shards."""
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
    bounds = bucket_bounds(model, flat)
    exchange = num_shards == 2
    to = 1 - me if exchange else 0
    sender = None
    if ctx.mesh is not None:  # each bucket is a whole allreduce: elementwise the same sums
        timeout = ctx.settings.peer_timeout_seconds
        sender = _Sender(lambda _, array: ctx.mesh.allreduce(array, timeout, channel.check))
    elif exchange or me != 0:
        sender = _Sender(lambda bucket, array: channel.send({f"in:{bucket}>{to}:{me}": array}))
    if sender is not None:
        sender.start()
    try:
        if len(x):
            flat.extra[0] = loss.forward(model.forward(x, training=True), y)
            span = {index: (start, stop) for index, start, stop in bounds}
            group_layers = dict(model.groups)
            for index in backward_by_group(model, loss.backward()):
                if index not in span:
                    continue  # a group without parameters (activation, flatten)
                for layer in group_layers[index]:  # only this group's gradients, not the model's
                    for name, grad in layer.grads.items():
                        np.copyto(flat.views[f"{index}.{name}"], grad)
                segment = flat.buffer[slice(*span[index])]
                segment *= scale
                if sender is not None:
                    sender.queue.put((index, segment))
        else:
            flat.buffer[:] = 0.0
            if sender is not None:
                for index, start, stop in bounds:
                    sender.queue.put((index, flat.buffer[start:stop]))
    finally:
        waited = time.perf_counter()
        if sender is not None:
            sender.finish()
    try:
        if ctx.mesh is None:
            _gather(channel, flat, bounds, me, num_shards)
    finally:
        ctx.comm_seconds += time.perf_counter() - waited


def _gather(channel: Channel, flat: FlatGradients, bounds, me: int, num_shards: int) -> None:
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
