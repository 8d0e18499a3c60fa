"""The tcp transport's allreduce of a vector that becomes final range by range (overlap).

Backward finishes the gradient bucket by bucket (``worker.collective.overlap``); each bucket's
bytes should be on the wire while the earlier layers are computed. ``PostedAllreduce`` does it
from the computing thread alone: ``post(k)`` hands range k to the kernel with non-blocking
sends (``TcpMesh`` sockets have buffers for a whole gradient, so the kernel keeps the link busy
while Python computes) and drains what arrived; ``finish`` waits once, with the deadline and
``check()`` every slice, like every other wait. A sender thread would need the CPU at the
moments a busy machine has none to give (measured: bench/step_profile.py).
"""

from __future__ import annotations

import numpy as np

from worker.collective.allreduce import as_bytes, sum_in_shard_order
from worker.collective.compression import Codec
from worker.collective.tcp_transport import HEADER, SCATTER_MIN_BYTES, TcpMesh


class PostedAllreduce:
    """``TcpMesh.allreduce`` of a vector whose ranges become final one by one (overlap with
    backward), driven by the caller's thread alone: ``post(k)`` hands range k's bytes to the
    kernel without waiting (the socket buffers hold a whole gradient, so the link stays busy
    while the caller computes), ``finish`` waits with the deadline and ``check()``.

    The peers post the same ranges in the same order, so each one knows the byte stream it
    will receive and no per-range header is needed (one header per call, as for ``allreduce``).
    Exchange (N = 2 or small vectors): every range goes whole to every peer; scatter: the part
    of a range in chunk c goes to shard c, and ``finish`` sums the chunk in shard order and
    runs the all-gather. Same sums, same rounding, same bits as ``allreduce``.
    """

    def __init__(self, mesh: TcpMesh, vector: np.ndarray, ranges: list[tuple[int, int]]):
        covered = sorted(ranges)
        if [a for a, _ in covered] != [0, *(b for _, b in covered[:-1])] or (
            covered[-1][1] != vector.size
        ):
            raise ValueError(f"ranges must tile [0, {vector.size}), got {ranges}")
        self.mesh, self.vector, self.ranges = mesh, vector, ranges
        self.unposted = set(range(len(ranges)))
        self.codec = Codec(mesh.compression, vector.dtype)
        n, me, size = mesh.num_shards, mesh.shard, vector.size
        self.scatter = n > 2 and vector.nbytes >= SCATTER_MIN_BYTES
        bounds = np.linspace(0, size, n + 1).astype(np.int64)
        self.chunks = [(int(bounds[c]), int(bounds[c + 1])) for c in range(n)]
        if not self.scatter:
            self.chunks = [(0, size)] * n
        lo, hi = self.chunks[me]
        self.received = {j: np.empty(hi - lo, self.codec.wire) for j in mesh.peers}
        self.headers = {j: bytearray(HEADER.size) for j in mesh.peers}
        self.inbox = {j: [memoryview(self.headers[j])] for j in mesh.peers}
        for a, b in (self._part(k, me) for k in range(len(ranges))):
            for j in mesh.peers:
                if a < b:
                    self.inbox[j].append(as_bytes(self.received[j][a - lo : b - lo]))
        self.out = {}
        for j in mesh.peers:
            parts = (self._part(k, j) for k in range(len(ranges)))
            payload = sum(b - a for a, b in parts if a < b) * np.dtype(self.codec.wire).itemsize
            self.out[j] = mesh._header(payload)

    def _part(self, k: int, owner: int) -> tuple[int, int]:
        """Range k's part that goes to ``owner`` (empty when a >= b)."""
        lo, hi = self.chunks[owner]
        return max(self.ranges[k][0], lo), min(self.ranges[k][1], hi)

    def post(self, k: int, check=None) -> None:
        """Range k of the vector is final: send its parts now (never waits)."""
        mesh, codec, me = self.mesh, self.codec, self.mesh.shard
        self.unposted.remove(k)
        a, b = self._part(k, me)
        rounded = codec.round(self.vector[a:b]) if a < b else None  # as the peers will see it
        for j in mesh.peers:
            a, b = self._part(k, j)
            if a < b:
                piece = rounded if not self.scatter else codec.encode(self.vector[a:b])
                self.out[j].append(as_bytes(piece))
                mesh._pump_send(j, self.out, check)
        for j in mesh.peers:  # drain what arrived, so the peers' sends never stall on our window
            if self.inbox[j]:
                mesh._pump_recv(j, self.inbox, check)

    def finish(self, timeout: float, check) -> None:
        """Wait for every part, sum in shard order (and all-gather): ``vector`` is the sum."""
        mesh, codec, me = self.mesh, self.codec, self.mesh.shard
        if self.unposted:
            raise RuntimeError(f"ranges {sorted(self.unposted)} were never posted")
        out = {j: views for j, views in self.out.items() if views}
        mesh._wait(out, self.inbox, timeout, check)
        payload = {j: self.received[j].nbytes for j in mesh.peers}
        mesh._check_headers(self.headers, payload)
        lo, hi = self.chunks[me]
        mine = self.vector[lo:hi]
        n = mesh.num_shards
        parts = [mine if j == me else codec.decode(self.received[j]) for j in range(n)]
        sum_in_shard_order(parts, out=mine)
        if self.scatter:
            chunk = [self.vector[a:b] for a, b in self.chunks]
            mesh._all_gather(chunk, codec, timeout, check)
        mesh.calls += 1
