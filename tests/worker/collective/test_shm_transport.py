"""The shared-memory allreduce: Redis-identical bits over many steps, deadlines, file lifetime."""

from __future__ import annotations

import hashlib
import multiprocessing
import secrets
import threading
import time

import numpy as np
import pytest

from tests.harness import run_in_threads
from worker.collective.allreduce import (
    PeerTimeoutError,
    allreduce_mean,
    data_client,
    sum_in_shard_order,
)
from worker.collective.shm_transport import (
    SHM_DIR,
    SharedSegments,
    remove_job_segments,
    segment_path,
)

pytestmark = pytest.mark.integration

SIZE = 50_001  # odd: no accidental alignment
STEPS = 24


@pytest.fixture
def job_id():
    """A fresh job id; whatever segments a failing test leaves are removed afterwards."""
    job = "job_t" + secrets.token_hex(4)
    yield job
    remove_job_segments(job)


def step_inputs(step: int, num_shards: int) -> tuple[list[np.ndarray], list[float]]:
    """Every shard's vector and the (uneven) weights of one step, the same in every process."""
    rng = np.random.default_rng(step)
    vectors = [rng.standard_normal(SIZE).astype(np.float32) * 10.0 ** (i % 3) for i in range(4)]
    weights = [float(w) for w in rng.integers(1, 9, 4)]
    return vectors[:num_shards], weights[:num_shards]


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(array.tobytes()).hexdigest()


def _slow_on_odd_calls(segments: SharedSegments):
    """Make this shard dawdle between "ready" and reading its peers' slots on odd calls: a peer
    that rewrote a slot too early would be caught red-handed."""
    import worker.collective.shm_transport as module

    def dawdling_sum(parts, out):
        if segments.calls % 2:
            time.sleep(0.02)
        return sum_in_shard_order(parts, out)

    module.sum_in_shard_order = dawdling_sum


def _shard_process(url, job_id, index, num_shards, signal_in_memory, out) -> None:
    import worker.collective.shm_transport as module

    module.SIGNAL_IN_MEMORY = signal_in_memory
    client = data_client(url)
    segments = SharedSegments(job_id, 0, index, num_shards, SIZE * 4 + 4)
    segments.connect(client, f"t:{job_id}:open", 20, None)
    if index == num_shards - 1:
        _slow_on_odd_calls(segments)
    results = {"shm": [], "redis": []}
    # all shared-memory steps back to back (a Redis step in between would act as a barrier)
    for step in range(STEPS):
        vectors, weights = step_inputs(step, num_shards)
        result = allreduce_mean(
            client, f"t:{job_id}:s{step}", vectors[index], weights, index, timeout=20, shm=segments
        )
        results["shm"].append(digest(result))
    for step in range(STEPS):
        vectors, weights = step_inputs(step, num_shards)
        result = allreduce_mean(
            client, f"t:{job_id}:r{step}", vectors[index], weights, index, timeout=20
        )
        results["redis"].append(digest(result))
    segments.close()
    out.put((index, results))


@pytest.mark.parametrize(
    "num_shards, signal_in_memory",
    [(2, True), (3, True), (4, True), (2, False), (3, False)],
    ids=["2-header", "3-header", "4-header", "2-redis-signal", "3-redis-signal"],
)
def test_shared_memory_gives_the_redis_bits_at_every_step_even_with_a_slow_reader(
    redis_url, redis_client, job_id, num_shards, signal_in_memory
):
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    args = (redis_url, job_id)
    procs = [
        ctx.Process(target=_shard_process, args=(*args, i, num_shards, signal_in_memory, out))
        for i in range(num_shards)
    ]
    for proc in procs:
        proc.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(10)

    for step in range(STEPS):
        vectors, weights = step_inputs(step, num_shards)
        scaled = [v * v.dtype.type(w / sum(weights)) for v, w in zip(vectors, weights, strict=True)]
        expected = digest(sum_in_shard_order(scaled, out=np.empty(SIZE, np.float32)))
        for shard in range(num_shards):
            assert results[shard]["shm"][step] == expected, (shard, step)
            assert results[shard]["redis"][step] == expected, (shard, step)
    assert redis_client.dbsize() == 0  # every "ready" message was consumed
    assert list(SHM_DIR.glob(f"gradq-{job_id}-*")) == []  # every owner unlinked its file


def connected_pair(url: str, job_id: str, capacity: int) -> list[SharedSegments]:
    def connect(i: int) -> SharedSegments:
        segments = SharedSegments(job_id, 0, i, 2, capacity)
        segments.connect(data_client(url), f"t:{job_id}:open", 10, None)
        return segments

    return run_in_threads(connect, 2)


@pytest.fixture(params=[True, False], ids=["header", "redis-signal"])
def signal_in_memory(request, monkeypatch) -> bool:
    """Both ways a step's "ready" travels: the segment header (x86-64) or a Redis message."""
    import worker.collective.shm_transport as module

    monkeypatch.setattr(module, "SIGNAL_IN_MEMORY", request.param)
    return request.param


@pytest.fixture
def pair(redis_url, job_id):
    """Two connected shards' segments of 64-byte slots, closed afterwards."""
    segments = connected_pair(redis_url, job_id, capacity=64)
    yield segments
    for shard in segments:
        shard.close()


def test_a_vector_larger_than_the_slots_goes_through_redis_with_the_same_bits(
    redis_url, job_id, pair
):
    vectors = [np.arange(1000, dtype=np.float32) * (i + 1) for i in range(2)]

    def shard(i: int, shm) -> np.ndarray:
        return allreduce_mean(
            data_client(redis_url),
            f"t:{job_id}:{shm is not None}",
            vectors[i].copy(),
            [3, 2],
            i,
            timeout=10,
            shm=shm,
        )

    big = run_in_threads(lambda i: shard(i, pair[i]), 2)
    plain = run_in_threads(lambda i: shard(i, None), 2)

    assert [s.calls for s in pair] == [0, 0]  # nothing went through shared memory
    assert big[0].tobytes() == big[1].tobytes() == plain[0].tobytes()


def test_idle_work_runs_once_per_exchange_and_with_header_signals_before_the_wait(
    redis_url, job_id, signal_in_memory, pair
):
    first_idle = threading.Event()
    calls = []

    def shard(i: int) -> np.ndarray:
        vector = np.full(4, i + 1.0, np.float32)
        if i == 1 and signal_in_memory:
            # a late peer that publishes only once shard 0's idle work ran: shard 0 must do
            # that work before waiting, or both wait until the deadline
            assert first_idle.wait(5)

        def idle() -> None:
            calls.append(i)
            first_idle.set()

        pair[i].exchange(data_client(redis_url), f"t:{job_id}:idle", vector, 5, None, idle=idle)
        return vector

    started = time.monotonic()
    results = run_in_threads(shard, 2)

    assert time.monotonic() - started < 4
    assert sorted(calls) == [0, 1]
    assert [r.tolist() for r in results] == [[3.0] * 4] * 2


def test_a_missing_peer_raises_peer_timeout_after_the_deadline_and_check_runs_meanwhile(
    redis_url, job_id, signal_in_memory, pair
):
    started = time.monotonic()
    checks = []

    with pytest.raises(PeerTimeoutError, match=r"shard\(s\) \[1\]"):
        pair[0].exchange(
            data_client(redis_url),
            f"t:{job_id}:dead",
            np.ones(4, np.float32),
            0.8,
            check=lambda: checks.append(1),
        )

    assert 0.8 <= time.monotonic() - started < 2.0  # the deadline, not a wait slice later
    assert len(checks) >= 2


def test_connect_without_the_peers_raises_peer_timeout_naming_them(redis_url, job_id):
    segments = SharedSegments(job_id, 0, 0, 3, 64)

    with pytest.raises(PeerTimeoutError, match=r"shard\(s\) \[1, 2\]"):
        segments.connect(data_client(redis_url), f"t:{job_id}:open", 0.5, None)

    segments.close()
    assert not segment_path(job_id, 0, 0).exists()


def test_leaked_segments_of_a_job_are_removed_up_to_an_attempt_and_no_others(job_id):
    other_job = job_id + "x"
    leaked = [
        SharedSegments(job, attempt, 1, 2, 64)
        for job, attempt in ((job_id, 0), (job_id, 1), (job_id, 2), (other_job, 0))
    ]

    removed = remove_job_segments(job_id, up_to_attempt=1)

    assert sorted(removed) == sorted([segment_path(job_id, 0, 1), segment_path(job_id, 1, 1)])
    assert segment_path(job_id, 2, 1).exists() and segment_path(other_job, 0, 1).exists()
    assert oct(segment_path(job_id, 2, 1).stat().st_mode & 0o777) == "0o600"  # owner only
    for segments in leaked:
        segments.close()
    assert list(SHM_DIR.glob(f"gradq-{job_id}*")) == []
