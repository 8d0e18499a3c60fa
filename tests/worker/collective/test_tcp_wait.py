"""TcpMesh's wait loop: it sleeps in select() until a socket it needs is ready, never spins."""

from __future__ import annotations

import socket
import threading
import time

from worker.collective.tcp_transport import TcpMesh


def test_a_peer_ahead_with_its_next_exchanges_bytes_queued_does_not_make_the_wait_spin():
    mesh = TcpMesh(0, 3, "127.0.0.1")
    ends = {j: socket.socketpair() for j in (1, 2)}
    mesh.peers = {j: here for j, (here, _) in ends.items()}
    for sock in mesh.peers.values():
        sock.setblocking(False)
    ends[2][1].sendall(b"next exchange")  # peer 2 already finished this one and is ahead
    expected = b"the last bytes of this exchange"
    inbox_1 = bytearray(len(expected))

    def slow_peer_1() -> None:
        time.sleep(0.4)
        ends[1][1].sendall(expected)

    sender = threading.Thread(target=slow_peer_1)
    sender.start()
    try:
        cpu, wall = time.thread_time(), time.monotonic()
        mesh._wait({}, {1: [memoryview(inbox_1)], 2: []}, timeout=10.0, check=None)
        cpu, wall = time.thread_time() - cpu, time.monotonic() - wall
        left = mesh.peers[2].recv(64)
    finally:
        sender.join()
        for pair in ends.values():
            for sock in pair:
                sock.close()
        mesh.listener.close()

    assert bytes(inbox_1) == expected
    assert wall >= 0.35
    # Registered for reading while its inbox was full, peer 2's socket made select() return at
    # once, round after round, for the whole 0.4 s (about 0.4 s of CPU); measured here: ~1 ms.
    assert cpu < 0.1, f"the wait burnt {cpu:.3f} s of CPU in {wall:.3f} s"
    assert left == b"next exchange"  # left for the next exchange, unread
