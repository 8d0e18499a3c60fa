"""Deterministic minibatches and shard slices.

The order of samples in an epoch depends only on (seed, epoch), and every global batch is the same
whatever the number of shards; shard ``i`` takes a contiguous slice of each global batch. So the
union of the shards' slices is exactly the global batch, which is what makes N-shard training
equal single-process training.
"""

from __future__ import annotations

import numpy as np


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """A permutation of ``range(n)`` (int64) fixed by ``(seed, epoch)``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return np.random.default_rng([seed, epoch]).permutation(n)


def global_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Index arrays of the epoch's global batches; the last one may be smaller."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = epoch_permutation(seed, epoch, n)
    return [order[start : start + batch_size] for start in range(0, n, batch_size)]


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Number of global batches in an epoch of ``n`` samples."""
    return -(-n // batch_size)


def shard_slice(batch_len: int, num_shards: int, shard_index: int) -> slice:
    """Shard ``shard_index``'s contiguous part of a batch of ``batch_len`` samples.

    Sizes differ by at most one; the first ``batch_len % num_shards`` shards get the extra sample.
    A shard may get an empty slice when the batch is smaller than the number of shards.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index must be in [0, {num_shards}), got {shard_index}")
    base, extra = divmod(batch_len, num_shards)
    start = shard_index * base + min(shard_index, extra)
    stop = start + base + (1 if shard_index < extra else 0)
    return slice(start, stop)
