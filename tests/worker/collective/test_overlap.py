"""Overlapping communication with backward gives bit-identical averaged gradients."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnlib
from tests.harness import run_in_threads, worker_env
from tests.worker.jobs_helpers import (
    FAST,
    assert_identical_weights,
    digits_spec,
    wait_finished,
)
from worker.collective.allreduce import data_client
from worker.collective.overlap import (
    BLOCK_BYTES,
    backward_buckets,
    bucket_plan,
    overlapped_gradients,
)
from worker.collective.tcp_transport import TcpMesh
from worker.config import Settings
from worker.job_logs import read_logs
from worker.jobs import JobStore
from worker.replica import EXTRA_SLOTS, FlatGradients, slice_sizes
from worker.replica_setup import Replica
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


def test_backward_buckets_yield_output_groups_first_and_match_model_backward():
    model = nnlib.build_model(SPEC, (4,), seed=0)
    twin = nnlib.build_model(SPEC, (4,), seed=0)
    x = np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32)
    dout = np.random.default_rng(1).standard_normal((7, 3)).astype(np.float32)
    model.forward(x, training=True)
    twin.forward(x, training=True)
    flat = FlatGradients(model.parameters())
    plan = bucket_plan(model, flat)

    order = list(backward_buckets(model, dout, flat, plan))
    twin.backward(dout, input_grad=False)

    assert [plan[k].group for k in order] == [2, 1, 0]
    assert plan[0].stop == flat.buffer.size  # carries the loss slot
    reference = FlatGradients(twin.parameters())
    reference.pack(twin.gradients())
    np.testing.assert_array_equal(flat.buffer[:-1], reference.buffer[:-1])


def test_a_large_first_dense_layer_is_bucketed_in_row_blocks_with_the_same_bits():
    wide = {"layers": [{"type": "dense", "units": 64, "activation": "relu"}, *SPEC["layers"]]}
    model = nnlib.build_model(wide, (300,), seed=0)  # first weight gradient 300 x 64 x 4 bytes
    twin = nnlib.build_model(wide, (300,), seed=0)
    x = np.random.default_rng(0).standard_normal((33, 300)).astype(np.float32)
    dout = np.random.default_rng(1).standard_normal((33, 3)).astype(np.float32)
    model.forward(x, training=True)
    twin.forward(x, training=True)
    flat = FlatGradients(model.parameters())
    plan = bucket_plan(model, flat, block_bytes=16 * 1024)

    order = list(backward_buckets(model, dout, flat, plan))
    twin.backward(dout, input_grad=False)

    blocks = [plan[k] for k in order if plan[k].group == 0]
    assert [b.rows for b in blocks] == [(240, 300), (180, 240), (120, 180), (60, 120), (0, 60)]
    assert blocks[0].stop == flat.offsets["0.b"][1]  # the bias travels with the last rows
    covered = sorted((b.start, b.stop) for b in plan)
    assert [start for start, _ in covered] == [0, *(stop for _, stop in covered[:-1])]
    reference = FlatGradients(twin.parameters())
    reference.pack(twin.gradients())
    np.testing.assert_array_equal(flat.buffer[:-1], reference.buffer[:-1])


# Run in a child: OpenBLAS reads OPENBLAS_CORETYPE once, when it loads. "" = the CPU's own kernels.
KEEPS_BITS = """
import numpy as np
from nnlib import build_model
from worker.collective.overlap import blocks_keep_bits
from worker.config import Settings
from worker.threads import blas_kernels, thread_budget
model = build_model({"layers": [{"type": "flatten"}, {"type": "dense", "units": 256}]}, [784])
blocks = model.layers[1].input_blocks
with thread_budget(Settings(blas_threads=1)):
    print(blas_kernels()[0])
    print(all(blocks_keep_bits(n, (784, 256), blocks, np.float32) for n in (128, 341, 512)))
"""


@pytest.mark.parametrize("core", ["Haswell", ""])
def test_the_mlps_first_layer_blocks_keep_the_whole_products_bits_on_these_kernels(core):
    # Unaligned blocks (a start at row 196) do not under OpenBLAS's Haswell SGEMM, and then the
    # overlap computes that layer's gradient in one product: nothing travels during backward.
    if "avx2" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("OpenBLAS's Haswell kernels need AVX2, which this CPU lacks")
    env = worker_env("redis://unused")  # the repo importable, as every child of the tests
    env.pop("OPENBLAS_CORETYPE", None)
    if core:
        env["OPENBLAS_CORETYPE"] = core
    result = subprocess.run(
        [sys.executable, "-c", KEEPS_BITS], env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    kernels, keeps = result.stdout.strip().splitlines()
    assert core in kernels  # the kernels asked for are the ones that ran
    assert keeps == "True"


@pytest.mark.parametrize("block_bytes", [BLOCK_BYTES, 320])  # 320: the first layer in 3 blocks
@pytest.mark.parametrize("transport", ["redis", "tcp"])
@pytest.mark.parametrize("num_shards", [2, 3])
def test_overlapped_gradients_equal_the_allreduce_path_bit_for_bit(
    redis_url, redis_client, num_shards, transport, block_bytes
):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((11, 40)).astype(np.float32)
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
        model = nnlib.build_model(SPEC, (40,), seed=5)
        replica = Replica({}, None, model, nnlib.losses.get("cross_entropy"), None, None, 1, {})
        ctx = ShardContext(store, data_client(redis_url), "job_t", i, 0, num_shards, settings)
        if transport == "tcp":
            ctx.transport, ctx.mesh = "tcp", meshes[i]
        flat = FlatGradients(model.parameters())
        part = slice(starts[i], starts[i + 1])
        if overlap:
            overlapped_gradients(ctx, flat, replica, x[part], y[part], sizes, 0, block_bytes)
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

    full = nnlib.build_model(SPEC, (40,), seed=5)
    value, grads = nnlib.loss_and_gradients(full, nnlib.losses.get("cross_entropy"), x, y)
    for i in range(num_shards):
        np.testing.assert_array_equal(out[(i, True)], out[(0, False)])
    np.testing.assert_allclose(out[(0, True)][-EXTRA_SLOTS], value, rtol=1e-5)  # the loss slot
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
    assert_identical_weights(redis_client, overlapped, plain)


def test_a_requested_overlap_on_one_hosts_shared_memory_says_in_the_job_log_why_it_does_nothing(
    redis_client, start_worker
):
    start_worker(concurrency=2, **FAST)  # two shards on one host: shared memory

    submitted = submit_job(redis_client, digits_spec(overlap=True), "a")
    job = wait_finished(redis_client, submitted["id"])

    assert job["status"] == "succeeded", job["status_reason"]
    assert job["history"][0]["transport"] == "shm" and job["history"][0]["overlap"] is False
    messages = [line["message"] for line in read_logs(redis_client, job["id"], count=1000)]
    said = [m for m in messages if m.startswith("overlap: true has no effect on this attempt")]
    assert said == [
        "overlap: true has no effect on this attempt: the shards share a host: shared memory "
        "exchanges the whole vector in ~0.3 ms"
    ]
