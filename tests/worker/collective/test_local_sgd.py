"""Local SGD (sync_every): the weight average is exact, and k > 1 still trains well."""

from __future__ import annotations

import numpy as np
import pytest

import nnlib
from tests.harness import run_in_threads
from tests.worker.jobs_helpers import FAST, digits_spec, wait_finished
from worker.collective.allreduce import allreduce_mean, data_client
from worker.collective.local_sgd import LocalSGD
from worker.submit import submit_job

pytestmark = pytest.mark.integration

SPEC = {
    "layers": [{"type": "dense", "units": 5, "activation": "tanh"}, {"type": "dense", "units": 3}]
}


def run_replicas(url: str, work, num_shards: int) -> list:
    """``work(shard, allreduce)`` in one thread per shard, each with its own connection."""

    def shard(i: int):
        client = data_client(url)

        def allreduce(name, vector, weights):
            return allreduce_mean(client, f"t:{name}", vector, weights, i, timeout=10)

        return work(i, allreduce)

    return run_in_threads(shard, num_shards)


def test_sync_averages_parameters_and_optimizer_state_by_samples_seen(redis_url):
    def work(shard, allreduce):
        model = nnlib.build_model(SPEC, (4,), seed=shard)  # deliberately different replicas
        optimizer = nnlib.optimizers.build({"type": "adam", "lr": 0.1}, model.parameters())
        x = np.random.default_rng(shard).standard_normal((8, 4)).astype(np.float32)
        _, grads = nnlib.loss_and_gradients(
            model, nnlib.losses.get("cross_entropy"), x, np.arange(8) % 3
        )
        optimizer.step(grads)
        before = ({k: v.copy() for k, v in model.parameters().items()}, optimizer.state_dict())
        sync = LocalSGD(every=2, num_shards=2, shard=shard)
        sync.record(8, 1.0 + shard)  # shard 0 gets 4 samples of 8, shard 1 gets 4
        sync.record(7, 1.0 + shard)  # shard 0 gets 4 samples of 7, shard 1 gets 3
        loss, samples = sync.sync(allreduce, "sync", model, optimizer)
        return before, model.parameters(), optimizer.state_dict(), loss, samples

    first, second = run_replicas(redis_url, work, 2)
    (p0, s0), params0, state0, loss0, samples = first
    (p1, s1), params1, _, loss1, _ = second

    assert samples == 15 and loss0 == loss1 == pytest.approx((1.0 * 8 + 2.0 * 7) / 15)
    for name in params0:
        np.testing.assert_allclose(params0[name], (8 * p0[name] + 7 * p1[name]) / 15, rtol=1e-5)
        np.testing.assert_array_equal(params0[name], params1[name])
    np.testing.assert_allclose(
        state0["m.0.W"], (8 * s0["m.0.W"] + 7 * s1["m.0.W"]) / 15, rtol=1e-5, atol=1e-7
    )


def test_with_plain_sgd_averaging_weights_every_step_equals_averaging_gradients(redis_url):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 4)).astype(np.float32)
    y = rng.integers(0, 3, 10)
    loss = nnlib.losses.get("cross_entropy")
    reference = nnlib.build_model(SPEC, (4,), seed=3)
    ref_optimizer = nnlib.optimizers.build({"type": "sgd", "lr": 0.5}, reference.parameters())
    for _ in range(3):
        ref_optimizer.step(nnlib.loss_and_gradients(reference, loss, x, y)[1])

    def work(shard, allreduce):
        model = nnlib.build_model(SPEC, (4,), seed=3)
        optimizer = nnlib.optimizers.build({"type": "sgd", "lr": 0.5}, model.parameters())
        part = slice(0, 6) if shard == 0 else slice(6, 10)  # uneven slices of the same batch
        sync = LocalSGD(every=1, num_shards=2, shard=shard)
        for step in range(3):
            value, grads = nnlib.loss_and_gradients(model, loss, x[part], y[part])
            optimizer.step(grads)
            sync.record(10, value)
            sync.weights[:] = [6, 4]
            sync.sync(allreduce, f"s{step}", model, optimizer)
        return model.parameters()

    for params in run_replicas(redis_url, work, 2):
        for name, expected in reference.parameters().items():
            np.testing.assert_allclose(params[name], expected, rtol=1e-5, atol=1e-6)


def test_a_two_shard_job_with_sync_every_four_learns_as_well(redis_client, start_worker):
    start_worker(concurrency=2, **FAST)
    spec = digits_spec(shards=2, epochs=3, sync_every=4, checkpoint_every=10)

    record = wait_finished(redis_client, submit_job(redis_client, spec, "acme")["id"])

    assert record["status"] == "succeeded", record["status_reason"]
    assert record["metrics"]["test_accuracy"] > 0.85
    assert all(np.isfinite(h["train_loss"]) for h in record["history"])
