"""Shared-memory allreduce for shards on one host: vectors and step signals in /dev/shm.

Each shard of an attempt owns one file ``/dev/shm/gradq-<job>-a<attempt>-s<shard>``: a 64-byte
header, then two slots of ``capacity`` bytes; mapped read-write by its owner and read-only by
every peer. A step copies the (pre-scaled) vector into the owner's slot and then stores the slot's
``[call + 1, nbytes]`` in the header; each peer polls that header (yielding the CPU, then sleeping
briefly) until it shows this call, and sums the peers' slots in place, read with
``numpy.frombuffer`` on the maps, in shard order: the same bits as every Redis algorithm. Waits
keep the Redis path's deadline and run ``check()`` (dead peer lease, cancel) every wait slice.

Why the header and not a Redis message per step: on the 2-core box a step's Redis round trip
(pipeline + BLPOP wake-up, ~0.15-0.3 ms) was most of the shared-memory allreduce (measured with
bench/scaling.py, N=2: comm 0.59 -> 0.28-0.43 ms/step, efficiency 0.84 -> 0.88). Redis stays the
control plane: gang start, leases, cancel, the transport choice and ``connect``'s handshake.
The header store must become visible after the slot's data: x86-64 keeps stores in program
order (TSO). Weaker memory models (ARM) give no such promise to Python code, so there each step
pushes a 16-byte "ready" message through Redis instead (``SIGNAL_IN_MEMORY``), whose socket
round trip orders the copy before the peers' reads.
"""

from __future__ import annotations

import mmap
import os
import platform
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from worker.collective.allreduce import (
    WAIT_SLICE_SECONDS,
    Channel,
    PeerTimeoutError,
    sum_in_shard_order,
)

SHM_DIR = Path("/dev/shm")
SLOTS = 2
HEADER_BYTES = 64  # [sequence, nbytes] int64 per slot, in one cache line before the slots
SIGNAL_IN_MEMORY = platform.machine().lower() in ("x86_64", "amd64")  # see the module docstring
SPIN_SECONDS = 0.002  # a peer is usually this close: poll with sched_yield only
POLL_SLEEP_SECONDS = 0.0001  # then sleep between polls, so a long wait does not burn a core


def segment_path(job_id: str, attempt: int, shard: int) -> Path:
    return SHM_DIR / f"gradq-{job_id}-a{attempt}-s{shard}"


def remove_job_segments(job_id: str, up_to_attempt: int | None = None) -> list[Path]:
    """Unlink this host's segments of ``job_id`` (only attempts <= ``up_to_attempt`` if given).

    Owners unlink their own file when their attempt ends; this removes what a SIGKILLed shard
    process leaked. Peers that still map a removed file keep their mapping (unlink only drops the
    name), so it is safe while an abandoned attempt winds down. Returns the removed paths.
    """
    pattern = re.compile(rf"gradq-{re.escape(job_id)}-a(\d+)-s\d+")
    removed = []
    for path in SHM_DIR.glob(f"gradq-{job_id}-a*"):
        match = pattern.fullmatch(path.name)
        if match and (up_to_attempt is None or int(match.group(1)) <= up_to_attempt):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


class SharedSegments:
    """This shard's two-slot segment and read-only maps of its peers' segments, for one attempt.

    ``capacity`` (bytes per slot) must be the same on every shard: vectors up to it travel through
    shared memory, larger ones through Redis (``allreduce_mean`` decides with ``fits``).
    Call ``connect`` once before the first ``exchange`` and ``close`` when the attempt ends.
    ``peer_shards`` (default: all others) are the shards whose segments ``connect`` maps;
    ``exchange`` needs them all, ``worker.collective.hierarchical`` maps only some of its host's
    and calls ``publish``, ``wait_for_peers``, ``peer_slot`` and ``end_call`` itself.
    """

    def __init__(
        self,
        job_id: str,
        attempt: int,
        shard: int,
        num_shards: int,
        capacity: int,
        peer_shards: Sequence[int] | None = None,
    ):
        self.job_id, self.attempt, self.shard, self.num_shards = job_id, attempt, shard, num_shards
        # whose segments ``connect`` maps: every other shard, or (hierarchical) a host's members
        others = range(num_shards) if peer_shards is None else peer_shards
        self.peer_shards = [j for j in others if j != shard]
        self.capacity = max(8, -(-int(capacity) // 8) * 8)  # 8-byte aligned slots for any dtype
        self.path = segment_path(job_id, attempt, shard)
        self.calls = 0  # shared-memory exchanges so far: call k uses slot k % 2
        self.peers: dict[int, mmap.mmap] = {}
        self.file_bytes = HEADER_BYTES + SLOTS * self.capacity
        self._headers: dict[int, np.ndarray] = {}  # peers' headers, mapped at connect
        self._own_header: np.ndarray | None = None
        # A file of the same (job, attempt, shard) can only be a leftover (the gang never runs a
        # shard twice in one attempt), so replace it; 0600: only this user's processes read it.
        self.path.unlink(missing_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, self.file_bytes)
            self.own = mmap.mmap(fd, self.file_bytes)
        except BaseException:
            self.path.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)

    def fits(self, vector: np.ndarray) -> bool:
        return vector.nbytes <= self.capacity

    def connect(self, redis, key: str, timeout: float, check: Callable[[], None] | None) -> None:
        """Wait until every peer created its segment, then map them all (one Redis round).

        Mapping every peer here, not at its first message, means an owner may unlink its file at
        any time afterwards (its attempt ended) without a peer ever failing to open it.
        """
        me, others = self.shard, self.peer_shards
        self._own_header = _header(self.own)
        if not others:  # a host's only shard (hierarchical): nobody to map
            return
        channel = Channel(redis, key, np.int64, timeout, check, 120)
        sizes = channel.send_and_receive(
            {f"open:{j}:{me}": np.array([self.capacity], np.int64) for j in others},
            [f"open:{me}:{j}" for j in others],
        )
        for j in others:
            if int(sizes[f"open:{me}:{j}"][0]) != self.capacity:
                raise RuntimeError(
                    f"shard {j} sized its shared-memory slots to {int(sizes[f'open:{me}:{j}'][0])}"
                    f" bytes, shard {me} to {self.capacity}: the replicas disagree on the model"
                )
            self.peers[j] = self._map_peer(j, check)
        self._headers = {j: _header(segment) for j, segment in self.peers.items()}

    def _map_peer(self, j: int, check) -> mmap.mmap:
        path = segment_path(self.job_id, self.attempt, j)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            if check is not None:
                check()  # the attempt was abandoned meanwhile: report that instead
            raise RuntimeError(
                f"shard {j}'s shared-memory segment {path} is not visible from shard {self.shard}"
            ) from None
        try:
            return mmap.mmap(fd, self.file_bytes, prot=mmap.PROT_READ)
        finally:
            os.close(fd)

    def exchange(
        self,
        redis,
        key: str,
        vector: np.ndarray,
        timeout: float,
        check,
        ttl_seconds: int = 120,
        idle: Callable[[], None] | None = None,
    ) -> None:
        """``vector`` (1-D, this shard's pre-scaled part) -> the sum of all shards' parts in shard
        order, in place. ``key`` names the step, as for the Redis algorithms. ``idle()`` runs
        once, after this shard's part is published and before it waits for its peers."""
        me, n, call = self.shard, self.num_shards, self.calls
        # Two slots suffice: shard A writes slot k % 2 for call k only after its call k-1 ended,
        # i.e. after every peer signalled call k-1; a peer signals call k-1 only once its call k-2
        # ended, i.e. after it finished reading A's slot (k-2) % 2 == k % 2. So no peer can still
        # be reading the slot A overwrites, however slow it is (and one slot would not do: a fast
        # shard would overwrite call k's data while a peer still sums it).
        if SIGNAL_IN_MEMORY:
            self.publish(vector)
            if idle is not None:
                idle()
            self.wait_for_peers(vector.nbytes, timeout, check, key)
        else:
            self._copy_in(vector)
            self._wait_through_redis(redis, key, call, vector.nbytes, timeout, check, ttl_seconds)
            if idle is not None:
                idle()
        parts = [
            vector if j == me else self.peer_slot(j, vector.dtype, vector.size) for j in range(n)
        ]
        sum_in_shard_order(parts, out=vector)
        self.end_call()

    def _copy_in(self, vector: np.ndarray) -> int:
        slot = self.calls % SLOTS
        offset = HEADER_BYTES + slot * self.capacity
        np.copyto(np.frombuffer(self.own, vector.dtype, vector.size, offset), vector)
        return slot

    def publish(self, vector: np.ndarray) -> None:
        """Copy ``vector`` (1-D, at most ``capacity`` bytes) into this call's slot and signal it
        in the header (x86-64 only: ``SIGNAL_IN_MEMORY``)."""
        slot = self._copy_in(vector)
        self._own_header[slot, 1] = vector.nbytes
        self._own_header[slot, 0] = self.calls + 1  # the last store: peers read the slot after it

    def peer_slot(self, j: int, dtype, size: int) -> np.ndarray:
        """Shard j's vector of this call (read-only view of its slot; valid until it is
        signalled again two calls later)."""
        offset = HEADER_BYTES + (self.calls % SLOTS) * self.capacity
        return np.frombuffer(self.peers[j], dtype, size, offset)

    def end_call(self) -> None:
        self.calls += 1

    def wait_for_peers(self, nbytes: int, timeout: float, check, key: str = "") -> None:
        """Until every mapped peer signalled this call (``nbytes`` each); deadline and
        ``check()`` as ``Channel.receive``."""
        self._wait_in_memory(self.calls, nbytes, key, timeout, check)

    def _wait_in_memory(self, call: int, nbytes: int, key: str, timeout: float, check) -> None:
        """Poll the peers' headers until each shows ``call`` in its slot; deadline and check()
        as ``Channel.receive``."""
        slot, pending = call % SLOTS, list(self._headers)
        started = time.monotonic()
        next_check = min(started + WAIT_SLICE_SECONDS, started + timeout)
        while True:
            pending = [j for j in pending if self._headers[j][slot, 0] != call + 1]
            if not pending:
                break
            now = time.monotonic()
            if now >= next_check:
                if check is not None:
                    check()
                if now - started >= timeout:
                    raise PeerTimeoutError(pending, timeout)
                next_check = min(now + WAIT_SLICE_SECONDS, started + timeout)
            time.sleep(0 if now - started < SPIN_SECONDS else POLL_SLEEP_SECONDS)
        for j, header in self._headers.items():
            if header[slot, 1] != nbytes:
                got = [int(header[slot, 0]) - 1, int(header[slot, 1])]
                self._out_of_step(j, key, got, call, nbytes)

    def _wait_through_redis(self, redis, key, call, nbytes, timeout, check, ttl_seconds) -> None:
        """The "ready" messages as a Redis pipeline and BLPOPs (no store-order promise)."""
        me, header = self.shard, np.array([call, nbytes], np.int64)
        others = [j for j in range(self.num_shards) if j != me]
        channel = Channel(redis, key, np.int64, timeout, check, ttl_seconds)
        ready = channel.send_and_receive(
            {f"shm:{j}:{me}": header for j in others}, [f"shm:{me}:{j}" for j in others]
        )
        for j in others:
            if ready[f"shm:{me}:{j}"].tolist() != header.tolist():
                self._out_of_step(j, key, ready[f"shm:{me}:{j}"].tolist(), call, nbytes)

    def _out_of_step(self, j: int, key: str, got: list, call: int, nbytes: int):
        raise RuntimeError(
            f"shard {j} sent {got} for step {key!r}, shard {self.shard} expected "
            f"[call, bytes] = {[call, nbytes]}: the shards are out of step"
        )

    def close(self) -> None:
        """Unmap everything and unlink this shard's file (peers keep their own mappings)."""
        self.path.unlink(missing_ok=True)
        self._headers, self._own_header = {}, None  # views into the maps: they block close()
        for segment in [self.own, *self.peers.values()]:
            try:
                segment.close()
            except BufferError:
                pass  # an array still views it (e.g. held by a traceback): freed with that array
        self.peers = {}

    def __enter__(self) -> SharedSegments:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _header(segment: mmap.mmap) -> np.ndarray:
    """The (SLOTS, 2) int64 header of a segment: per slot [call + 1, nbytes] of its last write."""
    return np.frombuffer(segment, np.int64, SLOTS * 2, 0).reshape(SLOTS, 2)
