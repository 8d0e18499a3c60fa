"""Update each part of the averaged gradient as it arrives, and start the next step's forward.

With ``overlap`` over tcp, backward hands the gradient to the network bucket by bucket, the last
layers first; an MLP's first layer holds most of the parameters, goes last, and is the one the
next forward needs first. Waiting for all of it, updating, then starting the forward leaves the
CPU idle while those bytes cross the wire and the wire idle during the forward. Here, as each
range of the averaged gradient becomes final (``PostedAllreduce.finish``'s ``on_final``):
- its parameters get their update (``Optimizer.update_span``: the rules are elementwise, so the
  bits are those of one whole ``step``);
- as each row block of the first layer's W has its update, the next step's x[:, a:b] W[a:b] is
  added (``nnlib`` ``BlockedProduct``: a plain forward adds the same blocks in the same order).
The next step adopts that product (``Model.forward(primed=...)``) instead of computing it. The
idea is ByteScheduler's and P3's: overlap communication with the next iteration's forward
(Peng et al., SOSP 2019; Jayarajan et al., MLSys 2019).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nnlib.layers.dense import BlockedProduct
from worker.replica import FlatGradients


def pipeline_applies(model, optimizer) -> bool:
    """A first dense layer in row blocks behind flatten layers only, and an optimizer whose
    update needs no whole-gradient figure (``clip_norm`` does)."""
    return model.primable() and getattr(optimizer, "clip_norm", None) is None


class UpdatePipeline:
    """The ``on_final`` of one step's exchange: updates, divergence check, next forward.

    ``ranges``: the exchange's (start, stop) ranges of ``flat.buffer``, in the order they become
    final. ``x_next``: the next step's rows of this shard (None or empty: no next forward).
    ``diverged(what)`` raises when the loss or a gradient is not finite; it is checked on each
    range before any of its values is used (the loss slot is in the first range).
    """

    def __init__(
        self,
        flat: FlatGradients,
        ranges: list[tuple[int, int]],
        model,
        optimizer,
        lr: float,
        x_next: np.ndarray | None,
        diverged: Callable[[str], None],
    ):
        self.flat, self.ranges, self.optimizer, self.diverged = flat, ranges, optimizer, diverged
        self.updated = 0
        self.spans = [_spans(flat.offsets, start, stop) for start, stop in ranges]
        first = model.first_trainable
        self.product = None
        if x_next is not None and len(x_next):
            if x_next.dtype != model.dtype:  # as Model.forward casts it: the same bits
                x_next = x_next.astype(model.dtype)
            self.product = BlockedProduct(first, x_next.reshape(len(x_next), -1))
            self.needs = _block_needs(flat, ranges, model, first)
        optimizer.begin_step(flat.views, lr)

    def __call__(self, final: int) -> None:
        """Ranges [0, final) are final: update the new ones, add the blocks they complete."""
        buffer, loss = self.flat.buffer, self.flat.extra
        while self.updated < final:
            start, stop = self.ranges[self.updated]
            if not np.isfinite(buffer[start:stop]).all():
                self.diverged("loss" if not np.isfinite(loss[0]) else "gradient")
            for name, a, b in self.spans[self.updated]:
                self.optimizer.update_span(name, a, b)
            self.updated += 1
        product = self.product
        while product is not None and product.done < len(self.needs):
            if self.needs[product.done] >= self.updated:
                break
            product.advance()

    def next_output(self) -> np.ndarray | None:
        """The next step's first-layer output (after every range is final), or None."""
        if self.updated != len(self.ranges):
            raise RuntimeError(f"{len(self.ranges) - self.updated} ranges were never final")
        if self.product is None:
            return None
        while self.product.advance():
            pass
        return self.product.result()


def _spans(offsets: dict[str, tuple[int, int]], start: int, stop: int) -> list[tuple]:
    """(parameter name, first, last element) of every parameter the range [start, stop) covers."""
    spans = []
    for name, (a, b) in offsets.items():
        lo, hi = max(a, start), min(b, stop)
        if lo < hi:
            spans.append((name, lo - a, hi - a))
    return spans


def _block_needs(flat: FlatGradients, ranges, model, first) -> list[int]:
    """For each of ``first``'s input blocks, the last range (index) holding its rows of W."""
    group = next(index for index, layers in model.groups if first in layers)
    w_start, _ = flat.offsets[f"{group}.W"]
    units = first.params["W"].shape[1]
    needs = []
    for a, b in first.input_blocks:
        lo, hi = w_start + a * units, w_start + b * units
        needs.append(max(k for k, (s, e) in enumerate(ranges) if s < hi and e > lo))
    return needs
