"""Overlapping communication with backward gives bit-identical averaged gradients."""

from __future__ import annotations

import numpy as np
import pytest

import nnlib
from tests.harness import run_in_threads
from tests.worker.jobs_helpers import FAST, digits_spec, model_weights, wait_finished
from worker.collective.allreduce import data_client
from worker.collective.overlap import backward_by_group, bucket_bounds, overlapped_gradients
from worker.collective.tcp_transport import TcpMesh
from worker.config import Settings
from worker.jobs import JobStore
from worker.replica import FlatGradients, slice_sizes
from worker.shard import Replica
from worker.shard_context import ShardContext
from worker.submit import submit_job

pytestmark = pytest.mark.integration

SPEC = {
    "layers": [
        {"type": "dense", "units": 6, "activation": "relu"},
        {"type": "dense", "units": 5, "activation": "tanh"},
        {"type": "dense", "units": 3},
    ]
}


def test_backward_by_group_yields_output_groups_first_and_matches_model_backward():
    model = nnlib.build_model(SPEC, (4,), seed=0)
    twin = nnlib.build_model(SPEC, (4,), seed=0)
    x = np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32)
    dout = np.random.default_rng(1).standard_normal((7, 3)).astype(np.float32)
    model.forward(x, training=True)
    twin.forward(x, training=True)

    order = list(backward_by_group(model, dout))
    twin.backward(dout, input_grad=False)

    assert order == [2, 1, 0]
    for name, grad in twin.gradients().items():
        np.testing.assert_array_equal(model.gradients()[name], grad)
    flat = FlatGradients(model.parameters())
    assert [b[0] for b in bucket_bounds(model, flat)] == [2, 1, 0]
    assert bucket_bounds(model, flat)[0][2] == flat.buffer.size  # carries the loss slot


@pytest.mark.parametrize("transport", ["redis", "tcp"])
@pytest.mark.parametrize("num_shards", [2, 3])
def test_overlapped_gradients_equal_the_allreduce_path_bit_for_bit(
    redis_url, redis_client, num_shards, transport
):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((11, 4)).astype(np.float32)
    y = rng.integers(0, 3, 11)
    sizes = slice_sizes(11, num_shards)
    starts = np.cumsum([0, *sizes])
    settings = Settings(redis_url=redis_url, peer_timeout_seconds=10)
    store = JobStore(redis_client)
    out: dict = {}
    meshes = [TcpMesh(i, num_shards, "127.0.0.1") for i in range(num_shards)]
    if transport == "tcp":
        run_in_threads(lambda i: meshes[i].connect(redis_client, "t:mesh", 10, None), num_shards)

    def shard(i: int, overlap: bool) -> None:
        model = nnlib.build_model(SPEC, (4,), seed=5)
        replica = Replica({}, None, model, nnlib.losses.get("cross_entropy"), None, None, 1, {})
        ctx = ShardContext(store, data_client(redis_url), "job_t", i, 0, num_shards, settings)
        if transport == "tcp":
            ctx.transport, ctx.mesh = "tcp", meshes[i]
        flat = FlatGradients(model.parameters())
        part = slice(starts[i], starts[i + 1])
        if overlap:
            overlapped_gradients(ctx, flat, replica, x[part], y[part], sizes, step=0)
        else:
            value, grads = nnlib.loss_and_gradients(model, replica.loss, x[part], y[part])
            flat.pack(grads)
            flat.extra[0] = value
            ctx.allreduce("0", flat.buffer, sizes)
        out[(i, overlap)] = flat.buffer.copy()

    try:
        for overlap in (False, True):
            run_in_threads(lambda i, overlap=overlap: shard(i, overlap), num_shards)
    finally:
        for mesh in meshes:
            mesh.close()

    full = nnlib.build_model(SPEC, (4,), seed=5)
    value, grads = nnlib.loss_and_gradients(full, nnlib.losses.get("cross_entropy"), x, y)
    for i in range(num_shards):
        np.testing.assert_array_equal(out[(i, True)], out[(0, False)])
    np.testing.assert_allclose(out[(0, True)][-1], value, rtol=1e-5)
    assert redis_client.keys("gradq:ar:*") == []


def test_a_job_with_overlap_ends_with_the_same_weights(redis_client, start_worker):
    # overlap applies to the Redis transport only (through shared memory it is moot)
    start_worker(concurrency=2, GRADQ_ALLREDUCE_TRANSPORT="redis", **FAST)

    overlapped = submit_job(redis_client, digits_spec(overlap=True), "a")
    plain = submit_job(redis_client, digits_spec(), "a")
    overlapped = wait_finished(redis_client, overlapped["id"])
    plain = wait_finished(redis_client, plain["id"])

    assert overlapped["status"] == plain["status"] == "succeeded", overlapped["status_reason"]
    assert overlapped["history"][0]["transport"] == "redis"
    a = model_weights(redis_client, overlapped["model_id"])
    b = model_weights(redis_client, plain["model_id"])
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
