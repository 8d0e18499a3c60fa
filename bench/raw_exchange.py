"""The bytes of one 2-host exchange alone: wall time and CPU per exchange on the harness's links.

Two harness hosts (``tests/multihost``: root only) swap a float32 vector of ``--floats``
(default: the MLP's gradient, 235,146 parameters and 2 extra slots) both ways at once, as the
tcp transport's exchange does for 2 shards: one socket, TCP_NODELAY, 4 MiB buffers,
non-blocking sends and receives driven by select. No NumPy work, no Python per part: what is
left is the wire and the kernel. Each side prints its median wall time and its mean user and
system CPU per exchange (getrusage), after a warm-up.

Why: it separates what a link costs from what gradq adds. On a 2-core machine whose two hosts
both compute, the system time is CPU a step cannot hide behind its compute (docs/distributed.md,
eighth machine).
Run: ``sudo python bench/raw_exchange.py [--rate 10000] [--floats 235148] [--exchanges 500]``.
"""

from __future__ import annotations

import argparse
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BUFFER_BYTES = 4 << 20  # as worker.collective.tcp_transport.SOCKET_BUFFER_BYTES
WARMUP = 50
PORT = 29650


def connect(role: str, address: str) -> socket.socket:
    if role == "listen":
        with socket.create_server((address, PORT)) as server:
            sock, _ = server.accept()
    else:
        deadline = time.monotonic() + 30
        while True:
            try:
                sock = socket.create_connection((address, PORT), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # the listener is still starting
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, BUFFER_BYTES)
    sock.setblocking(False)
    return sock


def exchange(sock: socket.socket, selector, out: memoryview, into: memoryview) -> None:
    """Send ``out`` and receive ``len(into)`` bytes at once."""
    sent = received = 0
    selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    while sent < len(out) or received < len(into):
        for _key, mask in selector.select(10.0):
            if mask & selectors.EVENT_WRITE and sent < len(out):
                sent += sock.send(out[sent:])
                if sent == len(out):
                    selector.modify(sock, selectors.EVENT_READ)
            if mask & selectors.EVENT_READ and received < len(into):
                received += sock.recv_into(into[received:])


def peer(role: str, address: str, floats: int, exchanges: int) -> None:
    """One side: prints "role: wall W ms, user U ms, system S ms per exchange"."""
    sock = connect(role, address)
    out, into = memoryview(bytearray(4 * floats)), memoryview(bytearray(4 * floats))
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    for _ in range(WARMUP):
        exchange(sock, selector, out, into)
    walls = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(exchanges):
        started = time.perf_counter()
        exchange(sock, selector, out, into)
        walls.append(time.perf_counter() - started)
    after = resource.getrusage(resource.RUSAGE_SELF)
    user = (after.ru_utime - before.ru_utime) / exchanges
    system = (after.ru_stime - before.ru_stime) / exchanges
    print(f"{role}: wall {statistics.median(walls) * 1e3:.3f} ms, user {user * 1e3:.3f} ms, "
          f"system {system * 1e3:.3f} ms per exchange", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=10000.0, help="link rate, Mbit/s")
    parser.add_argument("--floats", type=int, default=235_148)
    parser.add_argument("--exchanges", type=int, default=500)
    parser.add_argument("--peer", nargs=2, metavar=("ROLE", "ADDRESS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        peer(*args.peer, args.floats, args.exchanges)
        return
    from tests.multihost.cluster import Cluster, missing_privileges, python_argv

    reason = missing_privileges()
    if reason:
        sys.exit(f"bench/raw_exchange.py {reason}")
    with Cluster(3) as cluster:
        cluster.shape(args.rate)
        first, second = cluster.hosts[1], cluster.hosts[2]
        common = ["--floats", str(args.floats), "--exchanges", str(args.exchanges)]
        sides = [
            host.popen(
                python_argv(__file__, *common, "--peer", role, first.address),
                stdout=subprocess.PIPE,
            )
            for host, role in ((first, "listen"), (second, "connect"))
        ]
        megabytes = 4 * args.floats / 1e6
        print(f"{megabytes:.2f} MB each way at {args.rate:g} Mbit/s, {args.exchanges} exchanges")
        for side in sides:
            out, _ = side.communicate(timeout=600)
            print(out.decode().strip())


if __name__ == "__main__":
    main()
