"""The update pipeline (updates as ranges arrive, the next forward begun during the exchange)
trains the bits of the plain step, shard by shard, over real loopback TCP meshes."""

from __future__ import annotations

import numpy as np
import pytest

import nnlib
from tests.harness import run_in_threads
from worker.collective import overlap_choice
from worker.collective.allreduce import data_client
from worker.collective.overlap_choice import PROBE_STEPS, WARMUP
from worker.collective.tcp_transport import TcpMesh
from worker.config import Settings
from worker.jobs import JobStore
from worker.replica import FlatGradients, SliceRows
from worker.replica_setup import Replica
from worker.shard_context import ShardContext
from worker.steps import TrainingError, exact_step

pytestmark = pytest.mark.integration

SPEC = {  # a first layer of 784 x 300 float32 (940 KB): four row blocks
    "layers": [
        {"type": "flatten"},
        {"type": "dense", "units": 300, "activation": "relu"},
        {"type": "dense", "units": 10},
    ]
}
OPTIMIZERS = [
    {"type": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4},
    {"type": "adamw", "lr": 0.01},
]
BATCH, STEPS = 48, 4


def _train(redis_client, redis_url, num_shards, overlap, optimizer, data, tag, steps=STEPS):
    """``steps`` steps of every shard through ``exact_step``; -> (weights, primed, overlap
    choice) per shard."""
    x, y = data
    settings = Settings(redis_url=redis_url, peer_timeout_seconds=10)
    store = JobStore(redis_client)
    meshes = [TcpMesh(i, num_shards, "127.0.0.1") for i in range(num_shards)]
    run_in_threads(lambda i: meshes[i].connect(redis_client, f"t:{tag}", 10, None), num_shards)
    batches = [np.arange(s * BATCH, (s + 1) * BATCH) for s in range(steps)]

    def shard(i):
        model = nnlib.build_model(SPEC, (1, 28, 28), seed=3)
        loss = nnlib.losses.get("cross_entropy")
        opt = nnlib.optimizers.build(optimizer, model.parameters())
        replica = Replica({"overlap": overlap}, None, model, loss, opt, lambda s: 0.5, steps, {})
        ctx = ShardContext(store, data_client(redis_url), f"job_{tag}", i, 0, num_shards, settings)
        ctx.transport, ctx.mesh = "tcp", meshes[i]
        flat, rows = FlatGradients(model.parameters()), SliceRows(x, y)
        mine = [batch[i::num_shards] for batch in batches]  # any fixed split of each batch
        for step in range(steps):
            ahead = rows.ahead(mine[step + 1]) if step + 1 < steps else None
            exact_step(ctx, flat, replica, rows.get(mine[step]), BATCH, step, 0, ahead)
        weights = {k: v.copy() for k, v in model.parameters().items()}
        return weights, replica.primed, replica.overlap_choice

    try:
        return run_in_threads(shard, num_shards)
    finally:
        for mesh in meshes:
            mesh.close()


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=[o["type"] for o in OPTIMIZERS])
@pytest.mark.parametrize("num_shards", [2, 3])
def test_pipelined_steps_train_the_plain_steps_bits(
    redis_client, redis_url, num_shards, optimizer, monkeypatch
):
    adopted = []
    adopt = nnlib.layers.dense.Dense.adopt
    monkeypatch.setattr(
        nnlib.layers.dense.Dense, "adopt", lambda self, *a: adopted.append(1) or adopt(self, *a)
    )
    rng = np.random.default_rng(0)
    data = (
        rng.standard_normal((BATCH * STEPS, 1, 28, 28)).astype(np.float32),
        rng.integers(0, 10, BATCH * STEPS),
    )

    plain = _train(redis_client, redis_url, num_shards, False, optimizer, data, "plain")
    assert adopted == []
    piped = _train(redis_client, redis_url, num_shards, True, optimizer, data, "piped")

    assert len(adopted) == (STEPS - 1) * num_shards  # every step after the first was primed
    for weights, primed, _ in piped:
        assert primed is None  # the last step had no next rows to begin
        for name, value in plain[0][0].items():
            assert weights[name].tobytes() == value.tobytes(), name
    start = nnlib.build_model(SPEC, (1, 28, 28), seed=3).parameters()
    assert all((plain[0][0][name] != start[name]).any() for name in start)


# inf * 0 in the first layer's product is the NaN this test is about; NumPy's warning of it (seen
# with NumPy 2.4 and OpenBLAS 0.3.31) only repeats that
@pytest.mark.filterwarnings("ignore:invalid value encountered in dot:RuntimeWarning")
def test_a_non_finite_gradient_fails_a_pipelined_step_as_it_fails_a_plain_one(
    redis_client, redis_url
):
    x = np.zeros((BATCH * STEPS, 1, 28, 28), dtype=np.float32)
    x[BATCH : 2 * BATCH, 0, 0, 0] = np.inf  # the second step's batch
    y = np.zeros(BATCH * STEPS, dtype=np.int64)

    for overlap in (False, True):
        with pytest.raises(TrainingError, match="became (nan|inf) at epoch 1 step 2"):
            _train(redis_client, redis_url, 2, overlap, OPTIMIZERS[0], (x, y), f"nan{overlap}")


def test_unset_overlap_times_both_paths_and_every_shard_takes_the_same_one(
    redis_client, redis_url, monkeypatch
):
    reprobe = PROBE_STEPS + 4  # a second probe (and vote) soon after the first decision
    monkeypatch.setattr(overlap_choice, "REPROBE_EVERY", reprobe)
    steps = WARMUP + reprobe + PROBE_STEPS + 3
    rng = np.random.default_rng(1)
    data = (  # float64 rows: the primed product must cast them as Model.forward does
        rng.standard_normal((BATCH * steps, 1, 28, 28)),
        rng.integers(0, 10, BATCH * steps),
    )

    plain = _train(redis_client, redis_url, 2, False, OPTIMIZERS[0], data, "p2", steps)
    measured = _train(redis_client, redis_url, 2, None, OPTIMIZERS[0], data, "m2", steps)

    choices = [choice for _, _, choice in measured]
    assert choices[0].decided is not None and choices[0].steps == steps
    assert [choice.decided_at for choice in choices] == [WARMUP + reprobe + PROBE_STEPS] * 2
    assert choices[1].decided == choices[0].decided  # from the averaged vote, not own timing
    assert all(choice.timed[True] and choice.timed[False] for choice in choices)
    for weights, _, _ in measured:
        for name, value in plain[0][0].items():
            assert weights[name].tobytes() == value.tobytes(), name
