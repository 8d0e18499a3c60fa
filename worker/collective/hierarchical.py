"""The hierarchical transport: shared memory inside a host, TCP between one leader per host.

Per allreduce, for a host whose shards are L (its leader: the lowest index in L):
1. every non-leader publishes its pre-scaled vector in its /dev/shm segment (``SharedSegments``:
   a slot, then the header store that signals it) and waits for the leader's header;
2. the leader waits for its members' headers, reads their slots in place and runs the cross-host
   hop among the leaders (``LeaderMesh.reduce``): every leader ends with the sum of all N vectors
   in shard order;
3. the leader publishes that sum in its own segment; the members copy it out.
So the network carries one host's traffic once instead of once per shard, same-host vectors never
touch a socket, and the result has the bits of every other path, wherever the shards run
(``leader_mesh`` says why the vectors cross unreduced). Two slots suffice, as in
``shm_transport``: a member rewrites its slot k % 2 only after it read the leader's result k - 1,
which the leader publishes after it finished reading the members' slots of call k - 1 (and so of
k - 2); the leader rewrites its own slot k % 2 only after every member published call k, which
each does after it read result k - 1 (and so k - 2). Signals in the header need x86-64's store
order (``SIGNAL_IN_MEMORY``): elsewhere ``choose_transport`` does not pick this transport.
Every wait keeps the attempt's deadline and ``check()``; a broken leader socket raises
``PeerLinkError`` (the restart path). A member whose leader died sees the leader's lease expire
in ``check()``, as on ``shm``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack

import numpy as np

from worker.collective.allreduce import sum_in_shard_order
from worker.collective.leader_mesh import LeaderMesh
from worker.collective.shm_transport import SharedSegments


def hosts_of(records: Sequence[dict]) -> list[list[int]]:
    """The shard indices of each host (by the records' ``host`` identity), ascending, hosts
    ordered by their lowest shard: the same list on every shard that reads the same records."""
    by_host: dict[str, list[int]] = {}
    for shard, record in enumerate(records):
        by_host.setdefault(record["host"], []).append(shard)
    return sorted(by_host.values())


class HierarchicalExchange:
    """One shard's part of the hierarchical transport for one attempt.

    ``hosts``: ``hosts_of`` the attempt's records; ``capacity``: bytes of the largest vector
    (``transport.segment_bytes``); ``address``: this host's listening address (used by leaders
    only). ``connect`` once, ``allreduce`` per vector, ``close`` when the attempt ends.
    """

    def __init__(
        self,
        hosts: Sequence[Sequence[int]],
        shard: int,
        job_id: str,
        attempt: int,
        capacity: int,
        address: str,
        compression: str | None = None,
    ):
        self.hosts = [list(members) for members in hosts]
        self.shard = shard
        self.host = next(h for h, members in enumerate(self.hosts) if shard in members)
        self.members = self.hosts[self.host]
        self.leader = self.members[0]
        num_shards = sum(len(members) for members in self.hosts)
        with ExitStack() as undo:
            self.segments = SharedSegments(
                job_id,
                attempt,
                shard,
                num_shards,
                capacity,
                peer_shards=self.members if shard == self.leader else [self.leader],
            )
            undo.callback(self.segments.close)
            self.mesh = None
            if shard == self.leader and len(self.hosts) > 1:
                self.mesh = LeaderMesh(self.hosts, self.host, address, compression)
            undo.pop_all()

    @property
    def is_leader(self) -> bool:
        return self.shard == self.leader

    def connect(self, redis, key: str, timeout: float, check: Callable[[], None] | None) -> None:
        """Map the host's segments (the leader all members', a member the leader's), then the
        leaders' TCP rendezvous; ``key`` names the attempt's exchange."""
        self.segments.connect(redis, f"{key}:shm", timeout, check)
        if self.mesh is not None:
            self.mesh.connect(redis, f"{key}:tcp", timeout, check)

    def allreduce(self, vector: np.ndarray, timeout: float, check, idle=None) -> None:
        """``vector`` (1-D, this shard's pre-scaled part) -> the shard-order sum, in place.
        ``idle()`` runs once while this shard waits for others (as ``TcpMesh.allreduce``)."""
        segments = self.segments
        if not segments.fits(vector):
            raise ValueError(
                f"a {vector.nbytes}-byte vector exceeds the {segments.capacity}-byte shared-memory"
                " slots sized for this model"
            )
        if not self.is_leader:
            segments.publish(vector)
            if idle is not None:
                idle()
            segments.wait_for_peers(vector.nbytes, timeout, check)
            np.copyto(vector, segments.peer_slot(self.leader, vector.dtype, vector.size))
            segments.end_call()
            return
        segments.wait_for_peers(vector.nbytes, timeout, check)
        local = {
            i: vector if i == self.shard else segments.peer_slot(i, vector.dtype, vector.size)
            for i in self.members
        }
        if self.mesh is None:
            sum_in_shard_order([local[i] for i in self.members], out=vector)
            if idle is not None:
                idle()
        else:
            self.mesh.reduce(local, vector, timeout, check, idle)
        segments.publish(vector)
        segments.end_call()

    def close(self) -> None:
        if self.mesh is not None:
            self.mesh.close()
        self.segments.close()

    def __enter__(self) -> HierarchicalExchange:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
