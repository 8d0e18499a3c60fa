"""Direct TCP between the shard processes of an attempt, for shards on different hosts.

Every pair of shards holds one socket for the whole attempt (``worker.collective.tcp_rendezvous``
opens them: the attempt's token, only its peers accepted).

Per allreduce (``TcpMesh.allreduce``), bytes sent per shard for a vector of S bytes:
- ``scatter`` (reduce-scatter + all-gather; N >= 3 and S >= SCATTER_MIN_BYTES): shard c owns
  chunk c; every shard sends chunk c to shard c, which sums the N contributions IN SHARD ORDER,
  then sends its reduced chunk to every peer. 2(N-1)/N * S per shard, two rounds, all links busy
  at once (what a ring moves, but a ring adds each chunk in a rotating order: replicas would
  still agree, yet the bits would depend on N's rotation, not on the shard order every other
  path uses).
- ``exchange`` (N = 2, or small vectors): every shard sends its whole vector to every peer and
  sums locally in shard order. (N-1) * S per shard in one round: for N = 2 the same bytes as
  scatter with one round fewer; for small vectors the round trip costs more than the bytes.
Either way every replica gets exactly the bits of ``sum_in_shard_order`` (the Redis and shm paths).
``posted`` runs the same algorithms on a vector that becomes final range by range (overlap).
Waits have the attempt's deadline and run ``check()`` every WAIT_SLICE_SECONDS; a socket error
becomes ``PeerLinkError`` (after ``check()``, which names a dead or aborted peer more precisely).
"""

from __future__ import annotations

import selectors
import socket
import struct
import time
from collections.abc import Callable

import numpy as np

from worker.collective.allreduce import (
    WAIT_SLICE_SECONDS,
    PeerLinkError,
    PeerTimeoutError,
    sum_in_shard_order,
)
from worker.collective.compression import Codec
from worker.collective.lossless import FrameReceiver
from worker.collective.tcp_rendezvous import connect_peers

HEADER = struct.Struct("<qq")  # call number, payload bytes: catches shards out of step
SCATTER_MIN_BYTES = 64 * 1024  # below: one round of whole vectors beats two rounds of chunks
# Room in the kernel for a whole step's gradient each way, so a posted (overlapped) exchange
# leaves and lands while the shard computes (capped by net.core.wmem_max / rmem_max).
SOCKET_BUFFER_BYTES = 4 << 20


class TcpMesh:
    """One socket per peer for one attempt; ``connect`` once, ``allreduce`` per step."""

    def __init__(self, shard: int, num_shards: int, address: str, compression: str | None = None):
        self.shard, self.num_shards, self.address = shard, num_shards, address
        self.compression = compression
        self.calls = 0
        self.peers: dict[int, socket.socket] = {}
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.listener = socket.create_server((address, 0), family=family, backlog=num_shards + 8)
        self.selector = selectors.DefaultSelector()

    @property
    def endpoint(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"{host}:{port}"

    def connect(self, redis, key: str, timeout: float, check: Callable[[], None] | None) -> None:
        """Rendezvous through Redis (``tcp_rendezvous``): one socket to every peer, then the
        listening socket is closed (nobody else may connect)."""
        self.peers = connect_peers(self.listener, self.shard, self.num_shards, redis, key,
                                   timeout, check)  # fmt: skip
        for sock in self.peers.values():
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                if sock.getsockopt(socket.SOL_SOCKET, option) < SOCKET_BUFFER_BYTES:
                    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        self.listener.close()

    def allreduce(self, vector: np.ndarray, timeout: float, check, idle=None) -> None:
        """``vector`` (1-D, this shard's pre-scaled part) -> the shard-order sum, in place."""
        n = self.num_shards
        codec = Codec(self.compression, vector.dtype)
        if n > 2 and vector.nbytes >= SCATTER_MIN_BYTES:
            self._scatter(vector, codec, timeout, check, idle)
        else:
            outgoing = codec.round(vector)  # encoded once for every peer
            sends = {j: outgoing for j in self.peers}
            self._sum_with_peers(vector, sends, codec, timeout, check, idle)
        self.calls += 1

    def _scatter(self, vector, codec: Codec, timeout, check, idle) -> None:
        n, me = self.num_shards, self.shard
        bounds = np.linspace(0, vector.size, n + 1).astype(np.int64)
        chunk = [vector[bounds[c] : bounds[c + 1]] for c in range(n)]
        mine = chunk[me]
        codec.round(mine)  # the owner's part rounded as its peers' parts are
        sends = {c: codec.encode(chunk[c]) for c in self.peers}
        self._sum_with_peers(mine, sends, codec, timeout, check, idle)
        self._all_gather(chunk, codec, timeout, check)

    def _all_gather(self, chunk: list[np.ndarray], codec: Codec, timeout, check) -> None:
        """Send my reduced ``chunk[me]`` to every peer and fill every ``chunk[c]`` with theirs."""
        reduced = codec.round(chunk[self.shard])  # every replica holds what its peers receive
        gathered = self._transfer(
            {j: reduced for j in self.peers},
            {c: np.empty(chunk[c].size, codec.wire) for c in self.peers},
            codec,
            timeout,
            check,
        )
        for c, data in gathered.items():
            np.copyto(chunk[c], codec.decode(data))

    def _sum_with_peers(self, mine: np.ndarray, sends: dict, codec: Codec, timeout, check, idle):
        """Send ``sends[peer]``, receive every peer's part the size of ``mine`` and sum all parts
        in shard order into ``mine`` (1-D, in place)."""
        received = self._transfer(
            sends,
            {j: np.empty(mine.size, codec.wire) for j in self.peers},
            codec,
            timeout,
            check,
            idle,
        )
        n, me = self.num_shards, self.shard
        parts = [mine if j == me else codec.decode(received[j]) for j in range(n)]
        sum_in_shard_order(parts, out=mine)

    def _transfer(
        self, sends: dict, recvs: dict, codec: Codec, timeout: float, check, idle=None
    ) -> dict:
        """Send ``sends[peer]`` and fill ``recvs[peer]`` with every peer at once (encodings,
        carried as ``codec`` frames them); -> ``recvs``."""
        frames: dict[int, memoryview] = {}  # an array sent to several peers is framed once
        for array in sends.values():
            if id(array) not in frames:
                frames[id(array)] = codec.framed(array)
        out = {j: [*self._header(array.nbytes), frames[id(array)]] for j, array in sends.items()}
        headers = {j: bytearray(HEADER.size) for j in recvs}
        inbox = {j: [memoryview(headers[j]), codec.receiver(recvs[j])] for j in recvs}
        for j in list(out):
            if self._pump_send(j, out):  # most messages leave at once: nothing to select
                del out[j]
        if idle is not None:
            idle()
        self._wait(out, inbox, timeout, check)
        self._check_headers(headers, {j: recvs[j].nbytes for j in recvs})
        return recvs

    def _header(self, nbytes: int) -> list[memoryview]:
        return [memoryview(HEADER.pack(self.calls, nbytes))]

    def _wait(self, out: dict, inbox: dict, timeout: float, check, progress=None) -> None:
        """Pump until every view in ``out`` is sent and every view in ``inbox`` filled, with
        the deadline and ``check()`` every WAIT_SLICE_SECONDS. ``progress()`` (if given) runs
        before every round and returns new {peer: [views]} to send, appended to ``out``."""
        started = time.monotonic()
        next_check = started + WAIT_SLICE_SECONDS
        watched: dict[int, int] = {}  # peer -> the events its socket is registered for
        for j in self.peers:
            self._watch(j, out, inbox, watched)
        try:
            while True:
                for j, views in (progress() if progress is not None else {}).items():
                    if views:
                        out.setdefault(j, []).extend(views)
                        self._watch(j, out, inbox, watched)
                if not (out or any(inbox.values())):
                    break
                now = time.monotonic()
                if now >= next_check:
                    if check is not None:
                        check()
                    if now - started >= timeout:
                        raise PeerTimeoutError(
                            sorted({*out, *(j for j in inbox if inbox[j])}), timeout
                        )
                    next_check = now + WAIT_SLICE_SECONDS
                for key, mask in self.selector.select(max(0.0, next_check - now)):
                    j = key.data
                    if mask & selectors.EVENT_READ and inbox[j]:
                        self._pump_recv(j, inbox, check)
                    if mask & selectors.EVENT_WRITE and j in out and self._pump_send(j, out, check):
                        del out[j]
                    self._watch(j, out, inbox, watched)
        finally:
            for j in watched:
                self.selector.unregister(self.peers[j])

    def _watch(self, j: int, out: dict, inbox: dict, watched: dict[int, int]) -> None:
        """Register peer j's socket for what this wait still needs of it: writable while
        ``out[j]`` holds bytes, readable while ``inbox[j]`` expects some. A socket whose inbox is
        full must not stay registered for reading: a peer that is ahead may already have sent
        bytes of its next exchange, the socket stays readable, and select() would return at
        once, round after round, spinning a core the hosts share until the slowest peer's
        bytes arrive."""
        events = (selectors.EVENT_WRITE if out.get(j) else 0) | (
            selectors.EVENT_READ if inbox.get(j) else 0
        )
        before = watched.get(j, 0)
        if events == before:
            return
        if not events:
            self.selector.unregister(self.peers[j])
            del watched[j]
            return
        if before:
            self.selector.modify(self.peers[j], events, j)
        else:
            self.selector.register(self.peers[j], events, j)
        watched[j] = events

    def _check_headers(self, headers: dict, expected: dict) -> None:
        for j, header in headers.items():
            got = HEADER.unpack(header)
            if got != (self.calls, expected[j]):
                raise RuntimeError(
                    f"shard {j} sent [call, bytes] = {list(got)}, shard {self.shard} expected "
                    f"{[self.calls, expected[j]]}: the shards are out of step"
                )

    def _pump_send(self, j: int, out: dict, check=None) -> bool:
        """Send what the socket takes now of ``out[j]``; -> True when all of it left."""
        views = out[j]
        try:
            while views:
                sent = self.peers[j].send(views[0])
                views[0] = views[0][sent:]
                if not len(views[0]):
                    views.pop(0)
        except BlockingIOError:
            return False
        except OSError as error:
            self._link_failed(j, error, check)
        return True

    def _pump_recv(self, j: int, inbox: dict, check) -> None:
        """Fill what the socket has of ``inbox[j]``: memoryviews, or ``FrameReceiver``s whose
        size their own prefix tells (each is one entry, popped when complete)."""
        views = inbox[j]
        try:
            while views:
                head = views[0]
                frame = isinstance(head, FrameReceiver)
                got = self.peers[j].recv_into(head.view if frame else head)
                if got == 0:
                    self._link_failed(j, ConnectionResetError("closed by the peer"), check)
                if frame:
                    if head.advance(got):
                        views.pop(0)
                    continue
                views[0] = head[got:]
                if not len(views[0]):
                    views.pop(0)
        except BlockingIOError:
            return
        except OSError as error:
            self._link_failed(j, error, check)

    def _link_failed(self, j: int, error: OSError, check):
        if check is not None:
            check()  # a dead or aborted peer explains the broken socket better
        raise PeerLinkError(f"connection to shard {j} failed: {error}")

    def posted(self, vector: np.ndarray, ranges: list[tuple[int, int]]):
        """An allreduce of ``vector`` (1-D, pre-scaled) whose ``ranges`` (the same list on every
        shard) become final one at a time: ``post(k)`` each, then ``finish``
        (``worker.collective.tcp_posted``)."""
        from worker.collective.tcp_posted import PostedAllreduce

        return PostedAllreduce(self, vector, ranges)

    def close(self) -> None:
        self.listener.close()
        for sock in self.peers.values():
            sock.close()
        self.peers = {}
        self.selector.close()

    def __enter__(self) -> TcpMesh:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
