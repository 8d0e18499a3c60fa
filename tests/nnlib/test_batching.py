"""Shard slices partition every global batch, for any shard count and batch size."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib.batching import (
    epoch_permutation,
    global_batches,
    min_batch_for,
    shard_slice,
    steps_per_epoch,
)
from nnlib.layers.registry import layer_from_spec


@pytest.mark.parametrize("num_shards", range(1, 9))
@pytest.mark.parametrize("batch_size", [1, 7, 32, 33, 100])
def test_union_of_shard_slices_is_the_global_batch(num_shards, batch_size):
    for batch in global_batches(103, batch_size, seed=5, epoch=2):
        parts = [batch[shard_slice(len(batch), num_shards, i)] for i in range(num_shards)]

        np.testing.assert_array_equal(np.concatenate(parts), batch)
        sizes = [len(p) for p in parts]
        assert max(sizes) - min(sizes) <= 1


def test_global_batches_cover_the_epoch_once_and_do_not_depend_on_shards():
    batches = global_batches(1000, 64, seed=1, epoch=0)

    assert len(batches) == steps_per_epoch(1000, 64) == 16
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(1000))


def test_permutation_is_fixed_by_seed_and_epoch():
    a = epoch_permutation(3, 1, 50)

    np.testing.assert_array_equal(a, epoch_permutation(3, 1, 50))
    assert not np.array_equal(a, epoch_permutation(3, 2, 50))
    assert not np.array_equal(a, epoch_permutation(4, 1, 50))


@pytest.mark.parametrize(
    ("args", "name"), [((10, 0, 0), "num_shards"), ((10, 2, 2), "shard_index")]
)
def test_bad_shard_arguments_name_the_value(args, name):
    with pytest.raises(ValueError, match=name):
        shard_slice(*args)


@pytest.mark.parametrize("n", [1, 7, 64, 65, 66, 67, 128, 129, 1797])
@pytest.mark.parametrize("min_batch", [1, 2, 4, 16])
def test_a_last_batch_under_the_minimum_joins_the_one_before(n, min_batch):
    batches = global_batches(n, 64, seed=3, epoch=1, min_batch=min_batch)

    assert sorted(np.concatenate(batches).tolist()) == list(range(n))  # every sample, once
    assert len(batches) == steps_per_epoch(n, 64, min_batch)
    if len(batches) > 1:
        assert len(batches[-1]) >= min_batch
    plain = global_batches(n, 64, seed=3, epoch=1)
    assert [b.tolist() for b in batches[:-1]] == [b.tolist() for b in plain[: len(batches) - 1]]


def test_only_models_with_batch_statistics_need_two_samples_per_shard():
    dense = layer_from_spec({"type": "dense", "units": 4}, 0)
    batchnorm = layer_from_spec({"type": "batchnorm"}, 1)

    assert min_batch_for(dense, 8) == 1
    assert min_batch_for(dense + batchnorm, 8) == 16
    assert min_batch_for(dense + batchnorm, 1) == 2
