"""Small pieces of a data-parallel replica: the flat gradient buffer, slice sizes, evaluation."""

from __future__ import annotations

import numpy as np

from nnlib.batching import shard_slice

EXTRA_SLOTS = 2  # after the gradients: the loss, and the overlap vote (overlap_choice.py)


class FlatGradients:
    """All gradients of a model in ONE contiguous float32 vector (plus ``extra`` trailing slots).

    ``views[name]`` are reshaped views into ``buffer``: after the allreduce the optimizer reads the
    averaged gradients straight from it, with no unflatten copy.
    """

    def __init__(self, parameters: dict[str, np.ndarray], extra: int = EXTRA_SLOTS):
        dtype = next(iter(parameters.values())).dtype if parameters else np.float32
        total = sum(p.size for p in parameters.values())
        self.buffer = np.zeros(total + extra, dtype=dtype)
        self.views: dict[str, np.ndarray] = {}
        self.offsets: dict[str, tuple[int, int]] = {}
        offset = 0
        for name, param in parameters.items():
            self.views[name] = self.buffer[offset : offset + param.size].reshape(param.shape)
            self.offsets[name] = (offset, offset + param.size)
            offset += param.size
        self.extra = self.buffer[total:]

    def pack(self, gradients: dict[str, np.ndarray]) -> None:
        for name, view in self.views.items():
            np.copyto(view, gradients[name])


class SliceRows:
    """This shard's rows of each step's batch, gathered from the training arrays.

    ``ahead(mine)`` returns a callable that gathers the NEXT step's rows; the shard hands it to
    the allreduce, which runs it while waiting for its peers (a 512-row gather from a 170 MB
    array is ~0.3 ms of a 7 ms step), and ``get`` then returns those rows. Same rows, same bits.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x, y
        self._ahead: tuple | None = None  # (index array, x rows, y rows)

    def get(self, mine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] is mine:
            return ahead[1], ahead[2]
        return self.x[mine], self.y[mine]

    def ahead(self, mine: np.ndarray):
        def gather() -> np.ndarray:
            """Gather the next step's rows; -> its x rows (the array ``get`` will return)."""
            self._ahead = (mine, self.x[mine], self.y[mine])
            return self._ahead[1]

        return gather


def vector_bytes(arrays: dict[str, np.ndarray], extra: int) -> int:
    """``FlatGradients(arrays, extra).buffer.nbytes``, without allocating the buffer."""
    dtype = next(iter(arrays.values())).dtype if arrays else np.dtype(np.float32)
    return (sum(a.size for a in arrays.values()) + extra) * dtype.itemsize


def slice_sizes(batch_len: int, num_shards: int) -> list[int]:
    """Sizes of every shard's slice of a batch of ``batch_len`` samples."""
    slices = (shard_slice(batch_len, num_shards, i) for i in range(num_shards))
    return [s.stop - s.start for s in slices]


def evaluate_sums(model, loss, x: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """float64 [loss * count, correct, count] over (x, y): sums, so shards can add them up.

    ``correct`` is NaN when the loss has no notion of accuracy (regression).
    """
    totals = np.zeros(3, dtype=np.float64)
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        outputs = model.forward(xb, training=False)
        totals[0] += float(loss.forward(outputs, yb)) * len(xb)
        hits = loss.count_correct(outputs, yb)
        totals[1] += np.nan if hits is None else hits
        totals[2] += len(xb)
    return totals


def accuracy_from_sums(sums: np.ndarray) -> float | None:
    """The accuracy of ``evaluate_sums``'s totals; None where the loss has none (regression)."""
    return None if np.isnan(sums[1]) else round(sums[1]) / sums[2]


def build_loss(spec):
    """``"cross_entropy"`` or ``{"type": "cross_entropy", "label_smoothing": 0.1}`` -> loss."""
    from nnlib import losses

    return losses.from_spec(spec)


def rng_states(model) -> list:
    """Bit-generator states of layers that draw random numbers (dropout), JSON-able."""
    return [layer.rng.bit_generator.state for layer in _random_layers(model)]


def set_rng_states(model, states: list) -> None:
    for layer, state in zip(_random_layers(model), states, strict=False):
        layer.rng.bit_generator.state = state


def _random_layers(model) -> list:
    return [
        layer
        for layer in model.layers
        if isinstance(getattr(layer, "rng", None), np.random.Generator)
    ]
