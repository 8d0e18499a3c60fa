"""allreduce_mean: exact weighted means for N = 1..4, flat Redis memory, dead-peer deadline."""

from __future__ import annotations

import multiprocessing
import time

import numpy as np
import pytest

from tests.harness import run_in_threads
from worker.collective.allreduce import (
    RING_MIN_ELEMENTS,
    WAIT_SLICE_SECONDS,
    Channel,
    PeerTimeoutError,
    allreduce_mean,
    as_bytes,
    data_client,
    pick_algorithm,
    sum_in_shard_order,
)

pytestmark = pytest.mark.integration


def run_shards(
    url: str, vectors: list[np.ndarray], weights: list[float], key: str, algorithm: str
) -> list[np.ndarray]:
    """Each shard in its own thread with its own connection, as shard processes would."""

    def shard(i: int) -> np.ndarray:
        client = data_client(url)
        try:
            return allreduce_mean(
                client, key, vectors[i].copy(), weights, i, timeout=10, algorithm=algorithm
            )
        finally:
            client.close()

    return run_in_threads(shard, len(vectors))


@pytest.mark.parametrize("algorithm", ["leader", "ring", "exchange"])
@pytest.mark.parametrize("num_shards", [1, 2, 3, 4])
def test_every_shard_gets_the_slice_weighted_mean(redis_url, num_shards, algorithm):
    rng = np.random.default_rng(num_shards)
    size = 1003  # not divisible by 2, 3 or 4: uneven chunks
    vectors = [rng.standard_normal(size).astype(np.float32) for _ in range(num_shards)]
    weights = [5.0, 4.0, 4.0, 3.0][:num_shards]  # uneven slice sizes
    expected = sum(w * v.astype(np.float64) for w, v in zip(weights, vectors, strict=True))
    expected /= sum(weights)

    results = run_shards(redis_url, vectors, weights, "t:ar:1", algorithm)

    for result in results:
        assert result.dtype == np.float32
        np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)
    assert all(np.array_equal(results[0], r) for r in results)  # bit-identical replicas


def test_all_algorithms_give_bit_identical_results(redis_url):
    rng = np.random.default_rng(9)
    vectors = [rng.standard_normal(5001).astype(np.float32) for _ in range(2)]

    results = {
        a: run_shards(redis_url, vectors, [3, 2], f"t:bits:{a}", a)[1]
        for a in ("leader", "ring", "exchange")
    }

    np.testing.assert_array_equal(results["leader"], results["exchange"])
    np.testing.assert_array_equal(results["leader"], results["ring"])


def test_an_empty_slice_contributes_nothing(redis_url):
    vectors = [np.full(10, 2.0, np.float32), np.full(10, 99.0, np.float32)]

    results = run_shards(redis_url, vectors, [3.0, 0.0], "t:ar:empty", "leader")

    np.testing.assert_array_equal(results[1], np.full(10, 2.0, np.float32))


@pytest.mark.parametrize("algorithm", ["leader", "ring", "exchange"])
def test_many_steps_leave_no_keys_and_flat_memory(redis_url, redis_client, algorithm):
    vectors = [np.ones(50_000, np.float32) * (i + 1) for i in range(3)]
    run_shards(redis_url, vectors, [1, 1, 1], "t:warm", algorithm)
    memory_before = redis_client.info("memory")["used_memory"]

    for step in range(60):
        run_shards(redis_url, vectors, [1, 1, 1], f"t:ar:{step}", algorithm)

    assert redis_client.dbsize() == 0
    growth = redis_client.info("memory")["used_memory"] - memory_before
    assert growth < 200_000, f"used_memory grew by {growth} bytes over 60 steps"


def test_a_missing_peer_raises_after_the_deadline_and_check_runs_meanwhile(redis_url):
    client = data_client(redis_url)
    checks = []

    with pytest.raises(PeerTimeoutError, match=r"shard\(s\) \[1\]"):
        allreduce_mean(
            client,
            "t:ar:dead",
            np.ones(4, np.float32),
            [1, 1],
            0,
            timeout=0.8,
            check=lambda: checks.append(1),
        )

    assert len(checks) >= 2  # peers' leases are checked while waiting, not only at the deadline


def test_check_can_abort_a_wait(redis_url):
    client = data_client(redis_url)

    def cancelled():
        raise InterruptedError("cancel flag set")

    with pytest.raises(InterruptedError):
        allreduce_mean(
            client, "t:ar:cancel", np.ones(4, np.float32), [1, 1], 1, timeout=10, check=cancelled
        )


def _process_shard(url, index, queue):
    client = data_client(url)
    vector = np.arange(100_001, dtype=np.float32) * (index + 1)
    out = allreduce_mean(client, "t:ar:proc", vector, [2, 1, 1, 3], index, timeout=20)
    queue.put((index, out.tobytes()))


def test_separate_processes_agree(redis_url):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_process_shard, args=(redis_url, i, queue)) for i in range(4)]
    for proc in procs:
        proc.start()
    results = dict(queue.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(10)

    expected = np.arange(100_001, dtype=np.float64) * (2 * 1 + 1 * 2 + 1 * 3 + 3 * 4) / 7
    for out in results.values():
        np.testing.assert_allclose(np.frombuffer(out, np.float32), expected, rtol=1e-5)


def test_the_pure_python_packer_sends_memoryviews_unjoined(redis_url):
    client = data_client(redis_url)
    packer = client.connection_pool.get_connection()._command_packer
    view = memoryview(np.zeros(100_000, np.float32)).cast("B")

    chunks = packer.pack("RPUSH", "k", view)

    assert any(chunk is view for chunk in chunks)  # no copy into one big string


@pytest.mark.parametrize("algorithm", ["leader", "ring", "exchange"])
@pytest.mark.parametrize("empty", [0, 1])
def test_empty_slices_contribute_nothing_with_every_algorithm(redis_url, algorithm, empty):
    vectors = [np.full(7, 2.0, np.float32), np.full(7, 99.0, np.float32)]
    vectors[empty][:] = 0.0  # a shard with an empty slice sends zeros (steps.exact_step)
    weights = [3.0, 3.0]
    weights[empty] = 0.0

    results = run_shards(redis_url, vectors, weights, f"t:empty:{algorithm}{empty}", algorithm)

    expected = vectors[1 - empty]
    for result in results:
        np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("num_shards", [2, 3, 4])
def test_auto_matches_the_leader_bit_for_bit(redis_url, num_shards):
    rng = np.random.default_rng(num_shards)
    vectors = [rng.standard_normal(4099).astype(np.float32) * 1e3 for _ in range(num_shards)]
    weights = [7.0, 1.0, 3.0, 2.0][:num_shards]

    auto = run_shards(redis_url, vectors, weights, f"t:auto:{num_shards}", "auto")
    leader = run_shards(redis_url, vectors, weights, f"t:lead:{num_shards}", "leader")

    for result in auto:
        assert result.tobytes() == leader[0].tobytes()  # same bits, also the sign of zeros


def test_auto_exchanges_between_two_shards_below_the_ring_size():
    assert pick_algorithm(2, 100) == "exchange"
    assert pick_algorithm(2, RING_MIN_ELEMENTS) == "ring"
    assert pick_algorithm(3, 100) == "leader"
    assert pick_algorithm(4, RING_MIN_ELEMENTS) == "ring"


def test_exchange_does_not_wait_a_slice_when_the_peer_is_already_there(redis_url):
    """The pipelined BLPOP returns the peer's data in the same round trip."""
    client = data_client(redis_url)
    channel = Channel(client, "t:pipe", np.float32, 5.0, None, 60)
    client.rpush("t:pipe:x:0:1", as_bytes(np.full(3, 4.0, np.float32)))
    started = time.monotonic()

    received = channel.send_and_receive({"x:1:0": np.ones(3, np.float32)}, ["x:0:1"])

    assert time.monotonic() - started < WAIT_SLICE_SECONDS
    np.testing.assert_array_equal(received["x:0:1"], [4.0, 4.0, 4.0])
    assert 0 < client.ttl("t:pipe:x:1:0") <= 60  # pushed with its safety-net TTL
    np.testing.assert_array_equal(np.frombuffer(client.lpop("t:pipe:x:1:0"), np.float32), 1.0)


@pytest.mark.parametrize("num_parts", [1, 2, 3, 5])
def test_sum_in_shard_order_is_the_same_whichever_part_is_the_output(num_parts):
    rng = np.random.default_rng(num_parts)
    parts = [rng.standard_normal(1001).astype(np.float32) * 10 ** (i % 3) for i in range(num_parts)]
    reference = parts[0].copy()
    for part in parts[1:]:
        reference += part  # the leader's left-to-right order

    for k in range(num_parts):
        mine = [p.copy() for p in parts]
        out = sum_in_shard_order(mine, out=mine[k])
        assert out is mine[k]
        assert out.tobytes() == reference.tobytes()
        fresh = np.empty_like(parts[0])
        assert sum_in_shard_order([p.copy() for p in parts], out=fresh).tobytes() == (
            reference.tobytes()
        )


@pytest.mark.parametrize("num_shards", [1, 2])
def test_idle_work_runs_exactly_once_and_changes_nothing(redis_url, num_shards):
    vectors = [np.arange(10, dtype=np.float32) * (i + 1) for i in range(num_shards)]
    plain = run_shards(redis_url, vectors, [1.0] * num_shards, "t:idle:plain", "auto")
    calls = []

    def shard(i: int) -> np.ndarray:
        client = data_client(redis_url)
        return allreduce_mean(
            client,
            "t:idle",
            vectors[i].copy(),
            [1.0] * num_shards,
            i,
            timeout=10,
            idle=lambda: calls.append(i),
        )

    results = run_in_threads(shard, num_shards)

    assert sorted(calls) == list(range(num_shards))
    for result, expected in zip(results, plain, strict=True):
        assert result.tobytes() == expected.tobytes()
