"""Shared-memory allreduce for shards on one host: bulk vectors in /dev/shm, signals in Redis.

Each shard of an attempt owns one file ``/dev/shm/gradq-<job>-a<attempt>-s<shard>`` holding two
slots of ``capacity`` bytes, mapped read-write by its owner and read-only by every peer. A step
copies the (pre-scaled) vector into the owner's slot, pushes a 16-byte "ready" message to each
peer and blocks on the peers' messages through ``allreduce.Channel`` (one pipeline, BLPOP with the
same deadline, ``check()`` and TTLs as the Redis path); then it sums the peers' slots in place, read
with ``numpy.frombuffer`` on the maps, in shard order: the same bits as every Redis algorithm.
So Redis moves ~100 bytes per shard and step instead of two copies of the vector over TCP.
"""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from worker.allreduce import Channel, sum_in_shard_order

SHM_DIR = Path("/dev/shm")
SLOTS = 2


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
    """

    def __init__(self, job_id: str, attempt: int, shard: int, num_shards: int, capacity: int):
        self.job_id, self.attempt, self.shard, self.num_shards = job_id, attempt, shard, num_shards
        self.capacity = max(8, -(-int(capacity) // 8) * 8)  # 8-byte aligned slots for any dtype
        self.path = segment_path(job_id, attempt, shard)
        self.calls = 0  # shared-memory exchanges so far: call k uses slot k % 2
        self.peers: dict[int, mmap.mmap] = {}
        # A file of the same (job, attempt, shard) can only be a leftover (the gang never runs a
        # shard twice in one attempt), so replace it; 0600: only this user's processes read it.
        self.path.unlink(missing_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, SLOTS * self.capacity)
            self.own = mmap.mmap(fd, SLOTS * self.capacity)
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
        me, others = self.shard, [j for j in range(self.num_shards) if j != self.shard]
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
            return mmap.mmap(fd, SLOTS * self.capacity, prot=mmap.PROT_READ)
        finally:
            os.close(fd)

    def exchange(
        self, redis, key: str, vector: np.ndarray, timeout: float, check, ttl_seconds: int = 120
    ) -> None:
        """``vector`` (1-D, this shard's pre-scaled part) -> the sum of all shards' parts in shard
        order, in place. ``key`` names the step, as for the Redis algorithms."""
        me, n, call = self.shard, self.num_shards, self.calls
        # Two slots suffice: shard A writes slot k % 2 for call k only after its call k-1 ended,
        # i.e. after every peer signalled call k-1; a peer signals call k-1 only once its call k-2
        # ended, i.e. after it finished reading A's slot (k-2) % 2 == k % 2. So no peer can still
        # be reading the slot A overwrites, however slow it is (and one slot would not do: a fast
        # shard would overwrite call k's data while a peer still sums it).
        offset = (call % SLOTS) * self.capacity
        np.copyto(np.frombuffer(self.own, vector.dtype, vector.size, offset), vector)
        # The Redis round trip (socket syscalls on both sides) orders the copy above before the
        # peers' reads: they only read after popping the message pushed below.
        header = np.array([call, vector.nbytes], np.int64)
        others = [j for j in range(n) if j != me]
        channel = Channel(redis, key, np.int64, timeout, check, ttl_seconds)
        ready = channel.send_and_receive(
            {f"shm:{j}:{me}": header for j in others}, [f"shm:{me}:{j}" for j in others]
        )
        for j in others:
            if ready[f"shm:{me}:{j}"].tolist() != header.tolist():
                raise RuntimeError(
                    f"shard {j} sent {ready[f'shm:{me}:{j}'].tolist()} for step {key!r}, shard "
                    f"{me} expected [call, bytes] = {header.tolist()}: the shards are out of step"
                )
        parts = [
            vector if j == me else np.frombuffer(self.peers[j], vector.dtype, vector.size, offset)
            for j in range(n)
        ]
        sum_in_shard_order(parts, out=vector)
        self.calls += 1

    def close(self) -> None:
        """Unmap everything and unlink this shard's file (peers keep their own mappings)."""
        self.path.unlink(missing_ok=True)
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
