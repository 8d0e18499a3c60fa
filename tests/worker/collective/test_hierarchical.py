"""The hierarchical exchange with simulated hosts (threads as shard processes, real /dev/shm
segments, loopback TCP between the leaders): the bits of the flat paths, whatever the placement."""

from __future__ import annotations

import secrets
import threading

import numpy as np
import pytest

from tests.harness import run_in_threads
from worker.collective.allreduce import (
    PeerLinkError,
    PeerTimeoutError,
    allreduce_mean,
    data_client,
)
from worker.collective.hierarchical import HierarchicalExchange, hosts_of
from worker.collective.leader_mesh import chunk_bounds
from worker.collective.shm_transport import SIGNAL_IN_MEMORY, segment_path
from worker.collective.tcp_transport import SCATTER_MIN_BYTES, TcpMesh

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not SIGNAL_IN_MEMORY, reason="the transport signals in memory (x86-64)"),
]

PLACEMENTS = {
    "2x2 contiguous": [[0, 1], [2, 3]],
    "2x2 interleaved": [[0, 2], [1, 3]],
    "1+3": [[0], [1, 2, 3]],
    "3 hosts uneven": [[0, 3, 4], [1], [2]],
    "one host": [[0, 1, 2]],  # forced on one host: the leader adds, no network
}


def connected(redis_url: str, hosts, capacity: int, compression=None):
    n, job = sum(map(len, hosts)), f"t{secrets.token_hex(4)}"
    exchanges = [
        HierarchicalExchange(hosts, i, job, 0, capacity, "127.0.0.1", compression) for i in range(n)
    ]
    client = data_client(redis_url)
    try:
        run_in_threads(lambda i: exchanges[i].connect(client, f"{job}:hier", 10, None), n)
    except BaseException:
        close(exchanges)  # no segment left in /dev/shm by a failed connect
        raise
    return exchanges


def close(exchanges) -> None:
    for exchange in exchanges:
        exchange.close()


def shard_vectors(n: int, size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # magnitudes over 12 decades: any change of the addition order changes bits
    return [(rng.standard_normal(size) * 10.0 ** rng.integers(-6, 6, size)).astype(np.float32)
            for _ in range(n)]  # fmt: skip


@pytest.mark.parametrize("placement", PLACEMENTS, ids=list(PLACEMENTS))
@pytest.mark.parametrize("size", [3, SCATTER_MIN_BYTES // 4 + 3, 300_001])
@pytest.mark.parametrize("compression", [None, "zstd"])  # zstd is lossless: the same bits
def test_every_shard_gets_the_bits_of_the_flat_tcp_path_wherever_it_runs(
    redis_url, placement, size, compression
):
    hosts = PLACEMENTS[placement]
    n = sum(map(len, hosts))
    weights = [float(i + 1) for i in range(n)]
    exchanges = connected(redis_url, hosts, size * 4, compression)
    client = data_client(redis_url)
    flat = [TcpMesh(i, n, "127.0.0.1") for i in range(n)]
    flat_key = f"flat{secrets.token_hex(4)}"
    try:
        run_in_threads(lambda i: flat[i].connect(client, flat_key, 10, None), n)
        for step in range(3):  # three calls: both shared-memory slots, one of them reused
            vectors = shard_vectors(n, size, seed=step)
            hierarchical = run_in_threads(
                lambda i, v=vectors: allreduce_mean(
                    None, "", v[i].copy(), weights, i, timeout=10, mesh=exchanges[i]
                ),
                n,
            )
            over_tcp = run_in_threads(
                lambda i, v=vectors: allreduce_mean(
                    None, "", v[i].copy(), weights, i, timeout=10, mesh=flat[i]
                ),
                n,
            )
            for i in range(n):
                assert hierarchical[i].tobytes() == over_tcp[0].tobytes(), f"shard {i}"
    finally:
        close(exchanges)
        close(flat)


def test_a_per_host_partial_sum_would_differ_so_the_test_above_can_fail():
    # the order the hierarchical exchange must avoid: host sums first, then across hosts
    v = shard_vectors(4, 300_001, seed=0)
    shard_order = ((v[0] + v[1]) + v[2]) + v[3]
    by_host = (v[0] + v[2]) + (v[1] + v[3])  # "2x2 interleaved", each leader pre-adding
    assert shard_order.tobytes() != by_host.tobytes()


@pytest.mark.parametrize("compression", ["fp16", "bf16"])
@pytest.mark.parametrize("size", [1000, 200_000])  # the gather and the scatter path
def test_compression_keeps_every_replica_identical_and_close_to_the_exact_mean(
    redis_url, compression, size
):
    hosts = PLACEMENTS["2x2 interleaved"]
    exchanges = connected(redis_url, hosts, size * 4, compression)
    rng = np.random.default_rng(1)
    vectors = [rng.standard_normal(size).astype(np.float32) for _ in range(4)]
    try:
        out = run_in_threads(
            lambda i: allreduce_mean(
                None, "", vectors[i].copy(), [1.0] * 4, i, timeout=10, mesh=exchanges[i]
            ),
            4,
        )
    finally:
        close(exchanges)

    exact = (((vectors[0] + vectors[1]) + vectors[2]) + vectors[3]) / 4
    assert all(o.tobytes() == out[0].tobytes() for o in out)
    assert 0 < np.abs(out[0] - exact).max() <= 2e-2  # rounded on the wire, and only a little


def test_a_silent_member_fails_its_leaders_wait_at_the_deadline_after_checking_every_slice(
    redis_url,
):
    exchanges = connected(redis_url, [[0, 1], [2]], 64)
    checks = []
    try:
        with pytest.raises(PeerTimeoutError) as raised:
            exchanges[0].allreduce(np.ones(4, np.float32), 1.0, lambda: checks.append(1))
    finally:
        close(exchanges)

    assert raised.value.missing == [1]
    assert len(checks) >= 3  # every WAIT_SLICE_SECONDS (0.25 s) of the 1 s wait


def test_a_silent_leader_is_named_by_its_shard_index_when_the_other_leader_times_out(redis_url):
    exchanges = connected(redis_url, [[0, 1], [2, 3]], 64)
    member = threading.Thread(target=_publish_then_time_out, args=(exchanges[1],))
    member.start()  # shard 1 publishes, so leader 0 reaches the network hop
    try:
        with pytest.raises(PeerTimeoutError) as raised:
            exchanges[0].allreduce(np.ones(4, np.float32), 1.0, None)
    finally:
        member.join()
        close(exchanges)

    assert raised.value.missing == [2]  # host 1's leader (rank 1 of the leader mesh)


def _publish_then_time_out(exchange) -> None:
    with pytest.raises(PeerTimeoutError):  # its leader never publishes a result
        exchange.allreduce(np.ones(4, np.float32), 1.0, None)


def test_a_leader_losing_its_peer_leaders_socket_raises_peer_link_error(redis_url):
    exchanges = connected(redis_url, [[0, 1], [2, 3]], 64)
    vector = np.ones(4, np.float32)
    member = threading.Thread(target=_publish_then_time_out, args=(exchanges[1],))
    member.start()
    closer = threading.Timer(0.2, exchanges[2].mesh.close)
    closer.start()
    try:
        with pytest.raises(PeerLinkError, match="connection to shard 2 failed"):
            exchanges[0].allreduce(vector, 10.0, None)
    finally:
        closer.join()
        member.join()
        close(exchanges)


def test_segments_are_unlinked_when_the_attempt_ends(redis_url):
    exchanges = connected(redis_url, [[0, 1], [2, 3]], 64)
    paths = [exchange.segments.path for exchange in exchanges]
    assert all(path.exists() for path in paths)
    close(exchanges)
    assert not any(path.exists() for path in paths)
    assert paths[0] == segment_path(exchanges[0].segments.job_id, 0, 0)


def test_hosts_are_grouped_by_identity_and_ordered_by_their_lowest_shard():
    records = [{"host": h} for h in ["b", "a", "b", "c", "a"]]
    assert hosts_of(records) == [[0, 2], [1, 4], [3]]


@pytest.mark.parametrize("shards_per_host", [(2, 2), (1, 3), (3, 1, 1), (2, 6)])
def test_each_host_owns_its_shards_share_of_the_vector_and_no_chunk_is_empty(shards_per_host):
    n = sum(shards_per_host)
    for size in (n, 1000, 235_147):
        sizes = np.diff(chunk_bounds(shards_per_host, size))

        assert sizes.sum() == size and (sizes >= 1).all()
        assert np.abs(sizes - size * np.array(shards_per_host) / n).max() <= 1
