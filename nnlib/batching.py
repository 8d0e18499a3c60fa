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


def global_batches(
    n: int, batch_size: int, seed: int, epoch: int, min_batch: int = 1
) -> list[np.ndarray]:
    """Index arrays of the epoch's global batches; the last one may be smaller, but a last batch
    under ``min_batch`` samples joins the one before it (see ``min_batch_for``)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = epoch_permutation(seed, epoch, n)
    batches = [order[start : start + batch_size] for start in range(0, n, batch_size)]
    if len(batches) > 1 and len(batches[-1]) < min_batch:
        batches[-2:] = [order[(len(batches) - 2) * batch_size :]]
    return batches


def steps_per_epoch(n: int, batch_size: int, min_batch: int = 1) -> int:
    """Number of global batches in an epoch of ``n`` samples (as ``global_batches`` cuts them)."""
    steps = -(-n // batch_size)
    if steps > 1 and n - (steps - 1) * batch_size < min_batch:
        steps -= 1
    return steps


def min_batch_for(layers, num_shards: int) -> int:
    """Smallest global batch a model may train on: layers with batch statistics (batchnorm)
    normalise each shard's slice alone, and a slice of one sample normalises to zero, so such a
    model needs 2 samples on every shard; any other model takes batches of any size."""
    needs_statistics = any(getattr(layer, "batch_statistics", False) for layer in layers)
    return 2 * num_shards if needs_statistics else 1


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
