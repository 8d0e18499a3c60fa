"""The direct-TCP allreduce on loopback: Redis-identical bits, the token, deadlines, dead links."""

from __future__ import annotations

import secrets
import socket
import threading

import numpy as np
import pytest

from tests.harness import run_in_threads
from tests.worker.jobs_helpers import (
    FAST,
    assert_identical_weights,
    assert_same_weights,
    digits_spec,
    model_weights,
    wait_finished,
)
from worker.collective.allreduce import (
    PeerLinkError,
    PeerTimeoutError,
    allreduce_mean,
    data_client,
)
from worker.collective.tcp_rendezvous import HELLO, MAGIC
from worker.collective.tcp_transport import SCATTER_MIN_BYTES, TcpMesh
from worker.job_logs import read_logs
from worker.submit import submit_job

pytestmark = pytest.mark.integration


def connected_meshes(redis_url: str, n: int, key: str, compression=None) -> list[TcpMesh]:
    client = data_client(redis_url)
    meshes = [TcpMesh(i, n, "127.0.0.1", compression) for i in range(n)]
    run_in_threads(lambda i: meshes[i].connect(client, key, 10, None), n)
    return meshes


def shard_vectors(n: int, size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(size).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("compression", [None, "zstd"])  # zstd is lossless: the same bits
@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("size", [7, SCATTER_MIN_BYTES // 4 + 3, 300_001])
def test_tcp_allreduce_gives_every_shard_the_bits_of_the_redis_path(
    redis_url, n, size, compression
):
    key = f"t{secrets.token_hex(4)}"
    meshes = connected_meshes(redis_url, n, key, compression)
    weights = [float(i + 1) for i in range(n)]
    client = data_client(redis_url)
    try:
        for step in range(3):
            vectors = shard_vectors(n, size, seed=step)
            over_tcp = run_in_threads(
                lambda i, v=vectors: allreduce_mean(
                    None, "", v[i].copy(), weights, i, timeout=10, mesh=meshes[i]
                ),
                n,
            )
            through_redis = run_in_threads(
                lambda i, v=vectors, s=step: allreduce_mean(
                    client, f"{key}:r{s}", v[i].copy(), weights, i, timeout=10, algorithm="leader"
                ),
                n,
            )
            for i in range(n):
                assert over_tcp[i].tobytes() == through_redis[0].tobytes()
    finally:
        for mesh in meshes:
            mesh.close()


@pytest.mark.parametrize("compression", [None, "bf16", "zstd"])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_a_posted_allreduce_gives_the_bits_of_the_whole_vector_allreduce(redis_url, n, compression):
    size = 70_001  # scatter from 3 shards on (> SCATTER_MIN_BYTES), odd chunk bounds
    ranges = [(60_000, size), (41_000, 60_000), (20_500, 41_000), (0, 20_500)]  # backward order
    meshes = connected_meshes(redis_url, n, f"t{secrets.token_hex(4)}", compression)
    try:
        for step in range(2):
            vectors = shard_vectors(n, size, seed=step)

            whole = run_in_threads(lambda i, v=vectors: _allreduced(meshes[i], v[i].copy()), n)
            in_ranges = run_in_threads(
                lambda i, v=vectors: _posted(meshes[i], v[i].copy(), ranges), n
            )
            for i in range(n):
                assert in_ranges[i].tobytes() == whole[0].tobytes()
    finally:
        for mesh in meshes:
            mesh.close()


def _allreduced(mesh: TcpMesh, vector: np.ndarray) -> np.ndarray:
    mesh.allreduce(vector, 10, None)
    return vector


def _posted(mesh: TcpMesh, vector: np.ndarray, ranges, timeout=10, on_final=None) -> np.ndarray:
    """``vector`` allreduced through ``posted``, every range posted in order."""
    exchange = mesh.posted(vector, ranges)
    for k in range(len(ranges)):
        exchange.post(k)
    exchange.finish(timeout, None, on_final)
    return vector


@pytest.mark.parametrize("n", [2, 3])
def test_a_posted_allreduce_reports_final_ranges_in_order_while_the_rest_travel(redis_url, n):
    size = 300_001  # 3 shards scatter: the final sums of other chunks arrive by all-gather
    ranges = [(240_000, size), (160_000, 240_000), (80_000, 160_000), (0, 80_000)]
    meshes = connected_meshes(redis_url, n, f"t{secrets.token_hex(4)}")
    try:
        vectors = shard_vectors(n, size, seed=5)
        whole = run_in_threads(lambda i: _allreduced(meshes[i], vectors[i].copy()), n)[0]

        def posted(i):
            vector, reports = vectors[i].copy(), []

            def on_final(final):  # each range must already hold its final sum
                for a, b in ranges[reports[-1] if reports else 0 : final]:
                    assert vector[a:b].tobytes() == whole[a:b].tobytes()
                reports.append(final)

            return _posted(meshes[i], vector, ranges, on_final=on_final), reports

        for vector, reports in run_in_threads(posted, n):
            assert vector.tobytes() == whole.tobytes()
            assert reports == sorted(set(reports)) and reports[-1] == len(ranges)
    finally:
        for mesh in meshes:
            mesh.close()


def test_a_scattered_posted_allreduce_shares_every_range_among_all_shards(redis_url):
    # Backward finishes the vector's end first: were the owners the vector's thirds, the first
    # ranges would all go to the last shard and load one host's link while the others idle.
    size, n = 300_001, 3
    ranges = [(240_000, size), (160_000, 240_000), (80_000, 160_000), (0, 80_000)]
    meshes = connected_meshes(redis_url, n, f"t{secrets.token_hex(4)}")
    try:
        exchange = meshes[1].posted(np.zeros(size, np.float32), ranges)
        for k, (a, b) in enumerate(ranges):
            parts = [exchange._part(k, owner) for owner in range(n)]
            assert [p[0] for p in parts] == [a, parts[0][1], parts[1][1]] and parts[-1][1] == b
            assert all(abs((hi - lo) - (b - a) / n) <= 1 for lo, hi in parts)
    finally:
        for mesh in meshes:
            mesh.close()


def test_a_posted_exchange_through_small_socket_buffers_keeps_the_bits(redis_url):
    # With 64 KB of socket buffer most of a part waits in user space; summing a part in place
    # while its bytes still wait there would send the sum instead of the shard's own values.
    size, n = 1_000_003, 2
    ranges = [(size * (7 - k) // 8, size * (8 - k) // 8) for k in range(8)]
    meshes = connected_meshes(redis_url, n, f"t{secrets.token_hex(4)}")
    for mesh in meshes:
        for sock in mesh.peers.values():
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    try:
        for step in range(3):
            vectors = shard_vectors(n, size, seed=10 + step)
            whole = run_in_threads(lambda i, v=vectors: _allreduced(meshes[i], v[i].copy()), n)

            posted = run_in_threads(
                lambda i, v=vectors: _posted(meshes[i], v[i].copy(), ranges, timeout=30), n
            )
            for vector in posted:
                assert vector.tobytes() == whole[0].tobytes()
    finally:
        for mesh in meshes:
            mesh.close()


def test_a_posted_allreduce_refuses_ranges_that_do_not_tile_the_vector(redis_url):
    meshes = connected_meshes(redis_url, 2, f"t{secrets.token_hex(4)}")
    try:
        with pytest.raises(ValueError, match="must tile"):
            meshes[0].posted(np.zeros(10, np.float32), [(0, 4), (5, 10)])
    finally:
        for mesh in meshes:
            mesh.close()


@pytest.mark.parametrize("compression, error", [("fp16", 2e-3), ("bf16", 2e-2)])
@pytest.mark.parametrize("size", [1000, 200_000])  # the exchange and the scatter path
def test_compression_keeps_replicas_identical_and_close_to_the_exact_mean(
    redis_url, compression, error, size
):
    n = 3
    meshes = connected_meshes(redis_url, n, f"t{secrets.token_hex(4)}", compression)
    vectors = shard_vectors(n, size, seed=1)
    try:
        out = run_in_threads(
            lambda i: allreduce_mean(
                None, "", vectors[i].copy(), [1.0] * n, i, timeout=10, mesh=meshes[i]
            ),
            n,
        )
    finally:
        for mesh in meshes:
            mesh.close()

    exact = (vectors[0] + vectors[1] + vectors[2]) / 3
    assert out[0].tobytes() == out[1].tobytes() == out[2].tobytes()
    assert np.abs(out[0] - exact).max() <= error
    assert np.abs(out[0] - exact).max() > 0  # the values did travel as float16


def test_a_connection_without_the_attempts_token_is_refused_and_the_mesh_still_forms(redis_url):
    client = data_client(redis_url)
    key = f"t{secrets.token_hex(4)}"
    lower, upper = TcpMesh(0, 2, "127.0.0.1"), TcpMesh(1, 2, "127.0.0.1")
    host, port = lower.listener.getsockname()
    intruder = socket.create_connection((host, port))
    intruder.sendall(HELLO.pack(MAGIC, b"0" * 32, 1))  # claims to be shard 1, wrong token
    try:
        run_in_threads(lambda i: (lower, upper)[i].connect(client, key, 10, None), 2)

        assert intruder.recv(1) == b""  # closed without the accept byte
        out = run_in_threads(
            lambda i: allreduce_mean(
                None, "", np.full(4, i + 1.0, np.float32), [1.0, 1.0], i, timeout=5,
                mesh=(lower, upper)[i],
            ),
            2,
        )  # fmt: skip
        assert out[0].tolist() == out[1].tolist() == [1.5] * 4
    finally:
        intruder.close()
        lower.close()
        upper.close()


def test_a_silent_peer_fails_the_wait_at_the_deadline_after_checking_every_slice(redis_url):
    meshes = connected_meshes(redis_url, 2, f"t{secrets.token_hex(4)}")
    checks = []
    try:
        with pytest.raises(PeerTimeoutError) as raised:
            meshes[0].allreduce(np.ones(10, np.float32), 1.0, lambda: checks.append(1))
    finally:
        for mesh in meshes:
            mesh.close()

    assert raised.value.missing == [1]
    assert len(checks) >= 3  # every WAIT_SLICE_SECONDS (0.25 s) of the 1 s wait


def test_a_peer_closing_its_socket_raises_peer_link_error_after_check(redis_url):
    meshes = connected_meshes(redis_url, 2, f"t{secrets.token_hex(4)}")
    checks = []
    closer = threading.Timer(0.2, meshes[1].close)
    closer.start()
    try:
        with pytest.raises(PeerLinkError, match="connection to shard 1 failed"):
            meshes[0].allreduce(np.ones(10, np.float32), 10.0, lambda: checks.append(1))
    finally:
        closer.join()
        meshes[0].close()

    assert checks  # a dead or aborted peer would have been named by check() first


def test_a_job_with_fp16_compression_trains_over_tcp_close_to_the_exact_weights(
    redis_client, start_worker
):
    start_worker(concurrency=2, GRADQ_ALLREDUCE_TRANSPORT="tcp", **FAST)

    exact = submit_job(redis_client, digits_spec(shards=2), "acme")
    compressed = submit_job(redis_client, digits_spec(shards=2, compression="fp16"), "acme")
    exact, compressed = (wait_finished(redis_client, job["id"]) for job in (exact, compressed))

    assert exact["status"] == compressed["status"] == "succeeded", compressed["status_reason"]
    assert compressed["history"][0]["transport"] == "tcp"
    a = model_weights(redis_client, compressed["model_id"])
    b = model_weights(redis_client, exact["model_id"])
    assert_same_weights(a, b, rtol=1e-2)
    assert any((a[name] != b[name]).any() for name in a)  # float16 on the wire did round


def test_zstd_frames_carry_fewer_bytes_than_the_vector_when_it_has_zero_runs(redis_url):
    meshes = connected_meshes(redis_url, 2, f"t{secrets.token_hex(4)}", "zstd")
    vectors = shard_vectors(2, 200_000, seed=3)
    for vector in vectors:
        vector[: len(vector) // 2] = 0.0  # dead units: exact zeros in a gradient
    sent = [0, 0]

    def counting(i):  # the bytes that leave shard i's socket
        sock = meshes[i].peers[1 - i]
        meshes[i].peers[1 - i] = _CountingSocket(sock, sent, i)
        return meshes[i].allreduce(vectors[i], 10, None)

    try:
        run_in_threads(counting, 2)
    finally:
        for mesh in meshes:
            mesh.close()

    assert vectors[0].tobytes() == vectors[1].tobytes()
    assert 0 < sent[0] < 0.6 * vectors[0].nbytes and 0 < sent[1] < 0.6 * vectors[1].nbytes


class _CountingSocket:
    """A peer socket that adds what ``send`` hands to the kernel to ``sent[i]``."""

    def __init__(self, sock: socket.socket, sent: list[int], i: int):
        self.sock, self.sent, self.i = sock, sent, i

    def send(self, data) -> int:
        count = self.sock.send(data)
        self.sent[self.i] += count
        return count

    def __getattr__(self, name):
        return getattr(self.sock, name)


def test_a_job_with_zstd_compression_ends_with_the_uncompressed_jobs_weights(
    redis_client, start_worker
):
    start_worker(concurrency=2, GRADQ_ALLREDUCE_TRANSPORT="tcp", **FAST)

    plain = submit_job(redis_client, digits_spec(shards=2, overlap=False), "acme")
    zstd = submit_job(redis_client, digits_spec(shards=2, compression="zstd"), "acme")  # measured
    plain, zstd = (wait_finished(redis_client, job["id"]) for job in (plain, zstd))

    assert plain["status"] == zstd["status"] == "succeeded", zstd["status_reason"]
    assert zstd["history"][0]["transport"] == "tcp"
    assert_identical_weights(redis_client, zstd, plain)


def test_a_job_with_overlap_over_tcp_ends_with_the_plain_jobs_weights(redis_client, start_worker):
    start_worker(concurrency=2, GRADQ_ALLREDUCE_TRANSPORT="tcp", **FAST)

    plain = submit_job(redis_client, digits_spec(shards=2, epochs=3, overlap=False), "acme")
    overlapped = submit_job(redis_client, digits_spec(shards=2, epochs=3), "acme")  # measured
    plain, overlapped = (wait_finished(redis_client, job["id"]) for job in (plain, overlapped))

    assert plain["status"] == overlapped["status"] == "succeeded", overlapped["status_reason"]
    assert overlapped["history"][0]["transport"] == "tcp"
    # the attempt measured both paths (43 steps) and says what it chose, and why
    decided = overlapped["history"][-1]["overlap"]
    assert decided in (True, False) and plain["history"][-1]["overlap"] is False
    lines = [line["message"] for line in read_logs(redis_client, overlapped["id"], count=1000)]
    verdict = f": {'overlapping' if decided else 'not overlapping'}; measured again every"
    assert any(m.startswith("overlap measured over") and verdict in m for m in lines), lines
    assert_identical_weights(redis_client, overlapped, plain)
