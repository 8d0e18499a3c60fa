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

import functools

import numpy as np

from worker.collective.allreduce import sum_in_shard_order
from worker.collective.compression import Codec
from worker.collective.tcp_transport import HEADER, SCATTER_MIN_BYTES, TcpMesh


class PostedAllreduce:
    """``TcpMesh.allreduce`` of a vector whose ranges become final one by one (overlap with
    backward), driven by the caller's thread alone: ``post(k)`` hands range k's bytes to the
    kernel without waiting (the socket buffers hold a whole gradient, so the link stays busy
    while the caller computes), ``finish`` waits with the deadline and ``check()``.

    The peers post the same ranges in the same order, so each one knows the byte stream it
    will receive and no per-range header is needed (one header per call, as for ``allreduce``).
    Exchange (N = 2 or small vectors): every range goes whole to every peer, ``finish`` sums in
    shard order. Scatter: EVERY RANGE is cut in N parts and shard c owns part c of each; in
    ``finish`` each of my parts is summed in shard order as soon as every peer's copy of it has
    arrived, and sent to every peer right away (the all-gather of the first ranges overlaps
    the last ranges' reduce-scatter). The stream from a peer is its reduce-scatter parts, then
    its all-gather parts, both in range order. Same sums, same rounding, same bits as
    ``allreduce`` (each element is summed in shard order, whoever owns it).

    Why per range, not the whole vector's N chunks as ``allreduce`` cuts it: ranges become
    final in backward's order, the vector's end first. With chunks of the vector, the ranges
    of the first half of backward would all belong to the last shard, so every peer would send
    into that one host's link while the other links idled; and the last ranges, the tail no
    overlap hides, would wait on shard 0's link alone.
    """

    def __init__(self, mesh: TcpMesh, vector: np.ndarray, ranges: list[tuple[int, int]]):
        self.mesh, self.vector, self.ranges = mesh, vector, ranges
        self.unposted = set(range(len(ranges)))
        self.codec = codec = Codec(mesh.compression, vector.dtype)
        n, me = mesh.num_shards, mesh.shard
        self.scatter = n > 2 and vector.nbytes >= SCATTER_MIN_BYTES
        layout = _layout(tuple(ranges), vector.size, n, self.scatter)
        self.part_of, self.part_ranges, self.parts, self.offsets = layout
        mine = int(self.offsets[me][-1])
        self.received = {j: np.empty(mine, codec.wire) for j in mesh.peers}
        self.gathered = {j: np.empty(0, codec.wire) for j in mesh.peers}
        if self.scatter:
            self.gathered = {j: np.empty(int(self.offsets[j][-1]), codec.wire) for j in mesh.peers}
        self.headers = {j: bytearray(HEADER.size) for j in mesh.peers}
        self.inbox, self.out = {}, {}
        for j in mesh.peers:
            views = [
                codec.receiver(self._slot(self.received[j], me, i))
                for i in range(len(self.parts[me]))
            ]
            if self.scatter:
                views += [
                    codec.receiver(self._slot(self.gathered[j], j, i))
                    for i in range(len(self.parts[j]))
                ]
            self.inbox[j] = [memoryview(self.headers[j]), *views]
            self.out[j] = mesh._header(self._payload_to(j))
        self.queued = {j: len(self.out[j]) for j in mesh.peers}  # views ever put in out[j]
        self.reduced = 0  # how many of my parts are summed (and sent, when scattering)
        self.copied = {j: 0 for j in mesh.peers}  # all-gather parts copied into the vector
        self.final = 0  # ranges (in order) whose values in the vector are the final sums
        self.headers_checked = False

    def _part(self, k: int, owner: int) -> tuple[int, int]:
        """Range k's part that goes to ``owner`` (empty when a >= b): all of it when every
        shard sums whole ranges (the exchange), else its ``owner``-th N-th."""
        return self.part_of[k][owner]

    def _slot(self, buffer: np.ndarray, owner: int, i: int) -> np.ndarray:
        """The place of ``owner``'s i-th part in ``buffer`` (its parts back to back)."""
        return buffer[self.offsets[owner][i] : self.offsets[owner][i + 1]]

    def _payload_to(self, j: int) -> int:
        """Bytes this shard sends to peer j (what j expects from it) after the header."""
        values = sum(b - a for a, b in self.parts[j])
        if self.scatter:
            values += sum(b - a for a, b in self.parts[self.mesh.shard])
        return values * np.dtype(self.codec.wire).itemsize

    def post(self, k: int, check=None) -> None:
        """Range k of the vector is final: send its parts now (never waits)."""
        mesh, codec, me = self.mesh, self.codec, self.mesh.shard
        self.unposted.remove(k)
        a, b = self._part(k, me)
        rounded = codec.round(self.vector[a:b]) if a < b else None  # as the peers will see it
        whole = None  # the exchange sends the same range to every peer: framed once
        for j in mesh.peers:
            a, b = self._part(k, j)
            if a < b:
                if self.scatter:
                    self.out[j].append(codec.framed(codec.encode(self.vector[a:b])))
                else:
                    if whole is None:
                        whole = codec.framed(rounded)
                    self.out[j].append(whole)
                self.queued[j] += 1
                mesh._pump_send(j, self.out, check)
        for j in mesh.peers:  # drain what arrived, so the peers' sends never stall on our window
            if self.inbox[j]:
                mesh._pump_recv(j, self.inbox, check)

    def finish(self, timeout: float, check, on_final=None) -> None:
        """Wait for every part, sum in shard order (and all-gather): ``vector`` is the sum.

        ``on_final(count)``, if given, runs between rounds of the wait whenever more of the
        ranges (a prefix, in order) hold their final sums, and once more at the end with
        ``len(ranges)``: the caller may read those ranges (never write them) while the rest
        travel.
        """
        mesh = self.mesh
        if self.unposted:
            raise RuntimeError(f"ranges {sorted(self.unposted)} were never posted")
        out = {j: views for j, views in self.out.items() if views}

        def progress() -> dict[int, list[memoryview]]:
            sends = self._reduce_arrived()
            if on_final is not None and self._headers_in():
                self._copy_gathered()
                final = self._final_ranges()
                if final > self.final:
                    self.final = final
                    on_final(final)
            return sends

        mesh._wait(out, self.inbox, timeout, check, progress)
        self._headers_in()
        self._copy_gathered()
        mesh.calls += 1
        if on_final is not None and self.final < len(self.ranges):
            self.final = len(self.ranges)
            on_final(self.final)

    def _headers_in(self) -> bool:
        """Check every peer's header once all have arrived (before their data is used)."""
        if not self.headers_checked:
            if any(len(self.inbox[j]) == self._views_from(j) for j in self.mesh.peers):
                return False
            self.mesh._check_headers(
                self.headers, {j: self._payload_to(j) for j in self.mesh.peers}
            )
            self.headers_checked = True
        return True

    def _views_from(self, j: int) -> int:
        return 1 + len(self.parts[self.mesh.shard]) + self._gather_views(j)

    def _gathered(self, j: int) -> int:
        """All-gather parts from peer j that have fully arrived."""
        done = self._views_from(j) - len(self.inbox[j])
        return max(0, done - 1 - len(self.parts[self.mesh.shard]))

    def _copy_gathered(self) -> None:
        """Copy the reduced parts the peers own that arrived into the vector (the bytes
        I sent of them have all left: their owner summed them before sending these)."""
        for j in self.mesh.peers if self.scatter else ():
            arrived = self._gathered(j)
            for i in range(self.copied[j], arrived):
                a, b = self.parts[j][i]
                np.copyto(self.vector[a:b], self.codec.decode(self._slot(self.gathered[j], j, i)))
            self.copied[j] = max(self.copied[j], arrived)

    def _final_ranges(self) -> int:
        """How many ranges, in order, are final: every owner's parts of them are summed (mine)
        or copied in (the peers', when scattering)."""
        me = self.mesh.shard
        done = {me: self.reduced, **(self.copied if self.scatter else {})}
        final = self.final
        while final < len(self.ranges) and all(
            done[c] >= sum(1 for k in self.part_ranges[c] if k <= final) for c in done
        ):
            final += 1
        return final

    def _reduce_arrived(self) -> dict[int, list[memoryview]]:
        """Sum (in shard order) every part I own whose copies from all peers have arrived;
        -> the all-gather sends they make ({} when not scattering)."""
        mesh, me, mine = self.mesh, self.mesh.shard, self.parts[self.mesh.shard]
        arrived = len(mine)
        for j in mesh.peers:  # inbox[j]: header, my parts, (all-gather parts); popped
            done = 1 + len(mine) + self._gather_views(j) - len(self.inbox[j])
            arrived = min(arrived, max(done - 1, 0))
            if not self.scatter:
                # the sum is written in place over the part I send: not before all of it has
                # left for every peer (with small socket buffers it may still be queued here)
                arrived = min(arrived, self.queued[j] - len(self.out[j]) - 1)
        sends: dict[int, list[memoryview]] = {}
        while self.reduced < arrived:
            a, b = mine[self.reduced]
            theirs = {
                j: self.codec.decode(self._slot(self.received[j], me, self.reduced))
                for j in mesh.peers
            }
            own = self.vector[a:b]  # the same object in parts and out (sum_in_shard_order)
            sum_in_shard_order([own if j == me else theirs[j] for j in range(mesh.num_shards)], own)
            if self.scatter:  # every replica holds the rounded sum its peers receive
                reduced = self.codec.framed(self.codec.round(self.vector[a:b]))
                for j in mesh.peers:
                    sends.setdefault(j, []).append(reduced)
            self.reduced += 1
        return sends

    def _gather_views(self, j: int) -> int:
        return len(self.parts[j]) if self.scatter else 0


@functools.lru_cache(maxsize=32)
def _layout(ranges: tuple, size: int, n: int, scatter: bool):
    """Who owns which part of each range, computed once per plan, not once per step (it took
    ~0.19 of the ~0.25 ms a 3-shard posted allreduce of the MLP spent before sending anything).

    -> (part_of[k][owner] = (a, b), the range indices and the (a, b) parts each owner holds,
    non-empty and in range order, and each owner's parts' offsets when laid back to back).
    """
    covered = sorted(ranges)
    if [a for a, _ in covered] != [0, *(b for _, b in covered[:-1])] or covered[-1][1] != size:
        raise ValueError(f"ranges must tile [0, {size}), got {list(ranges)}")
    if scatter:  # every range cut in n parts; the exchange sends whole ranges to everyone
        cuts = [np.linspace(a, b, n + 1).astype(np.int64) for a, b in ranges]
        part_of = [tuple((int(c[o]), int(c[o + 1])) for o in range(n)) for c in cuts]
    else:
        part_of = [tuple((a, b) for _ in range(n)) for a, b in ranges]
    # shared by every call with this plan: tuples and read-only arrays, so no call can change it
    owned = [[(k, part_of[k][c]) for k in range(len(ranges))] for c in range(n)]
    part_ranges = tuple(tuple(k for k, (a, b) in parts if a < b) for parts in owned)
    parts = tuple(tuple((a, b) for _, (a, b) in parts if a < b) for parts in owned)
    offsets = tuple(np.cumsum([0, *(b - a for a, b in mine)]) for mine in parts)
    for array in offsets:
        array.flags.writeable = False
    return tuple(part_of), part_ranges, parts, offsets
