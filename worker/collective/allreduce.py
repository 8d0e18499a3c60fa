"""allreduce_mean: the weighted mean of one flat vector across N shards, through Redis lists or,
when every shard runs on this host, through shared memory (``worker.collective.shm_transport``).

Transports (``GRADQ_ALLREDUCE_TRANSPORT``, decided per attempt by ``worker.collective.transport``):
- ``shm``: each shard copies its vector into its own /dev/shm segment and Redis carries only a
  16-byte "ready" message per peer and step (same pipeline, BLPOP, deadline and ``check()`` as
  below); every shard then sums the peers' segments in shard order. Vectors larger than the
  segment (none in training: it is sized for the largest) fall back to Redis.
- ``redis``: the vectors themselves travel through Redis lists, with one of the algorithms below.

Per step every shard writes with ONE pipeline and waits with BLPOP (the reply carries the bytes, so
there is no extra GET); the exchange puts its first BLPOP in the same pipeline as its pushes, so
a step costs one round trip when the peer is on time. Replies are read by
``worker.collective.resp`` straight into one buffer per vector (redis-py's parser copies a 1 MB
reply three times).
Every list is consumed by its reader, so a finished step leaves no key behind; each write also
sets a TTL as a safety net for abandoned steps. Vectors travel as raw bytes (a ``memoryview``,
read back with ``numpy.frombuffer``), never pickled or JSON-encoded.

Three algorithms, same result (bit for bit):
- ``leader`` (small vectors): shards 1..N-1 push to shard 0, which sums and pushes the mean back.
  One pipeline and one wait per shard; shard 0 moves 2(N-1) vectors.
- ``ring`` (reduce-scatter + all-gather over N chunks): shard c owns chunk c; every shard sends and
  receives 2(N-1)/N of the vector, so no shard is a bottleneck. Two pipelines, two waits.
- ``exchange``: every shard sends its whole vector to every other and sums locally; one round
  instead of two (2 sequential transfers instead of the leader's 4 for 2 shards), but all shards
  push at once into the single-threaded Redis, which hurts from 3 shards on.
Measured on the shared 2-core box (bench/scaling.py, noisy), 0.94 MB over 2 shards: exchange
1.1-1.8 ms, leader 1.9-2.7 ms, ring 2.0 ms (raw SET+GET 0.5 ms); over 4 shards leader 8 ms, ring
14 ms, exchange 23 ms; 8 MB over 2 shards: ring 43 ms, leader 55, exchange 57. Hence ``auto``
(``pick_algorithm``): ring from RING_MIN_ELEMENTS elements on; below, exchange for 2 shards and
leader for more.
Every algorithm sums in shard order, ((v0 + v1) + v2) + ..., so all replicas hold the same bits
and the algorithms agree bit for bit.

redis-py must use its pure-Python command packer: with hiredis installed it packs large values
slowly (measured 4.7 ms instead of 0.7 ms for 1 MB). hiredis is therefore not a dependency, and
``data_client`` pins the Python packer even if someone installs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import redis as redis_lib
from redis.connection import Encoder, PythonRespSerializer

from worker.collective import resp

if TYPE_CHECKING:
    from worker.collective.shm_transport import SharedSegments
    from worker.collective.tcp_transport import TcpMesh

RING_MIN_ELEMENTS = 1_000_000  # below this the leader's single round trip is cheaper
WAIT_SLICE_SECONDS = 0.25  # how often a blocked shard checks its peers' leases and the cancel flag


class PeerTimeoutError(RuntimeError):
    """A peer's data did not arrive before the deadline."""

    def __init__(self, missing: list[int], seconds: float):
        super().__init__(f"no data from shard(s) {missing} within {seconds:g} s")
        self.missing = missing


class PeerLinkError(RuntimeError):
    """A direct connection to a peer failed (reset, closed, unreachable): the attempt restarts."""


class PurePythonPacker(PythonRespSerializer):
    """redis-py's Python RESP packer, built the way ``Connection`` builds it."""

    def __init__(self) -> None:
        super().__init__(6000, Encoder("utf-8", "strict", False).encode)


def data_client(url: str, **kwargs) -> redis_lib.Redis:
    """A Redis client for bulk vectors: pure-Python packer, 1 MB socket reads.

    redis-py's default 64 KB ``socket_read_size`` makes reading a 1 MB reply 7x slower
    (measured: GET of 0.94 MB 3.1 ms -> 0.41 ms with 1 MB reads).
    """
    kwargs.setdefault("socket_read_size", 1 << 20)
    return redis_lib.Redis.from_url(url, command_packer=PurePythonPacker(), **kwargs)


def as_bytes(array: np.ndarray) -> memoryview:
    """A zero-copy byte view (redis-py sends memoryviews without joining them into one string)."""
    return memoryview(np.ascontiguousarray(array)).cast("B")


def allreduce_mean(
    redis: redis_lib.Redis,
    key: str,
    vector: np.ndarray,
    weights: Sequence[float],
    shard_index: int,
    *,
    timeout: float,
    check: Callable[[], None] | None = None,
    algorithm: str = "auto",
    ttl_seconds: int = 120,
    shm: SharedSegments | None = None,
    idle: Callable[[], None] | None = None,
    mesh: TcpMesh | None = None,
) -> np.ndarray:
    """Replace ``vector`` (1-D, same length and dtype on all shards) with sum_i w_i v_i / sum w.

    ``key`` names this step (unique per job, attempt and step); ``weights[i]`` is shard i's weight
    (its slice size), known to every shard. ``check()`` runs while waiting and may raise (dead peer,
    cancel); ``PeerTimeoutError`` after ``timeout`` seconds without the data. With ``shm`` (this
    shard's connected segments; all shards pass them or none) vectors that fit go through shared
    memory and ``algorithm`` is ignored for them. ``idle()`` (work that does not need the result,
    e.g. gathering the next batch's rows) runs exactly once: on shared memory while this shard
    waits for its peers, otherwise after the exchange. With ``mesh`` (this shard's connected
    ``TcpMesh``; all shards or none) vectors go over direct TCP between the shards. Returns
    ``vector``.
    """
    num_shards = len(weights)
    vector *= vector.dtype.type(weights[shard_index] / float(sum(weights)))
    if mesh is not None and num_shards > 1:
        mesh.allreduce(vector, timeout, check, idle=idle)
        return vector
    if shm is not None and shm.fits(vector) and num_shards > 1:
        shm.exchange(redis, key, vector, timeout, check, ttl_seconds, idle=idle)
        return vector
    _redis_allreduce(
        redis, key, vector, shard_index, num_shards, timeout, check, algorithm, ttl_seconds
    )
    if idle is not None:
        idle()
    return vector


def _redis_allreduce(
    redis, key, vector, shard_index, num_shards, timeout, check, algorithm, ttl_seconds
) -> None:
    if num_shards == 1:
        return
    if algorithm == "auto":
        algorithm = pick_algorithm(num_shards, vector.size)
    channel = Channel(redis, key, vector.dtype, timeout, check, ttl_seconds)
    if algorithm == "leader":
        _leader(channel, vector, shard_index, num_shards)
    elif algorithm == "ring":
        _ring(channel, vector, shard_index, num_shards)
    elif algorithm == "exchange":
        _exchange(channel, vector, shard_index, num_shards)
    else:
        raise ValueError(
            f"algorithm must be 'auto', 'leader', 'ring' or 'exchange', got {algorithm!r}"
        )


def pick_algorithm(num_shards: int, size: int) -> str:
    """``auto``: the ring from RING_MIN_ELEMENTS on (its chunks keep Redis and both cores busy
    at once); below that the one-round exchange for 2 shards, else the leader."""
    if size >= RING_MIN_ELEMENTS:
        return "ring"
    return "exchange" if num_shards == 2 else "leader"


def _leader(channel: Channel, vector: np.ndarray, me: int, n: int) -> None:
    if me != 0:
        (result,) = channel.send_and_receive({f"in:{me}": vector}, [f"out:{me}"]).values()
        vector[:] = result
        return
    received = channel.receive([f"in:{i}" for i in range(1, n)])
    sum_in_shard_order([vector, *(received[f"in:{i}"] for i in range(1, n))], out=vector)
    channel.send({f"out:{i}": vector for i in range(1, n)})


def _ring(channel: Channel, vector: np.ndarray, me: int, n: int) -> None:
    bounds = np.linspace(0, vector.size, n + 1).astype(np.int64)
    chunk = [vector[bounds[c] : bounds[c + 1]] for c in range(n)]
    parts = channel.send_and_receive(
        {f"rs:{c}:{me}": chunk[c] for c in range(n) if c != me},
        [f"rs:{me}:{j}" for j in range(n) if j != me],
    )
    sum_in_shard_order(
        [chunk[me] if j == me else parts[f"rs:{me}:{j}"] for j in range(n)], chunk[me]
    )
    gathered = channel.send_and_receive(
        {f"ag:{j}:{me}": chunk[me] for j in range(n) if j != me},
        [f"ag:{me}:{c}" for c in range(n) if c != me],
    )
    for c in range(n):
        if c != me:
            chunk[c][:] = gathered[f"ag:{me}:{c}"]


def _exchange(channel: Channel, vector: np.ndarray, me: int, n: int) -> None:
    # ONE round trip carries my pushes and the first blocking read of a peer's vector.
    received = channel.send_and_receive(
        {f"x:{j}:{me}": vector for j in range(n) if j != me},
        [f"x:{me}:{j}" for j in range(n) if j != me],
    )
    parts = [vector if j == me else received[f"x:{me}:{j}"] for j in range(n)]
    sum_in_shard_order(parts, out=vector)


def sum_in_shard_order(parts: list[np.ndarray], out: np.ndarray) -> np.ndarray:
    """``out[:] = ((parts[0] + parts[1]) + parts[2]) + ...``: the leader's order, on every shard.

    Float addition is not associative, so every algorithm adds in this one order and all
    replicas get the same bits. ``out`` may be one of ``parts`` (no temporary then, unless it is
    a later part than the second, whose value the running sum must not overwrite early).
    """
    if len(parts) == 1:
        np.copyto(out, parts[0])
        return out
    early = any(out is part for part in parts[:2]) or not any(out is part for part in parts)
    acc = np.add(parts[0], parts[1], out=out if early else None)
    for part in parts[2:]:
        np.add(acc, part, out=acc)
    if acc is not out:
        np.copyto(out, acc)
    return out


class Channel:
    """Named one-shot mailboxes of one step: ``send`` pushes, ``receive`` pops with a deadline.

    (Also used by ``worker.collective.overlap``, which sends a step's gradient in per-layer
    buckets.)
    """

    def __init__(self, redis, key, dtype, timeout, check, ttl_seconds):
        self.redis, self.key, self.dtype = redis, key, dtype
        self.timeout, self.check, self.ttl = timeout, check, ttl_seconds

    def send(self, messages: dict[str, np.ndarray]) -> None:
        resp.execute(self.redis, self._pushes(messages))

    def send_and_receive(
        self, messages: dict[str, np.ndarray], names: list[str]
    ) -> dict[str, np.ndarray]:
        """``send`` then ``receive``, with the first blocking pop in the same pipeline: one
        round trip fewer (BLPOP may not sit inside MULTI, but a plain pipeline is fine)."""
        keys = [f"{self.key}:{name}" for name in names]
        started = time.monotonic()
        replies = resp.execute(
            self.redis, [*self._pushes(messages), ("BLPOP", *keys, WAIT_SLICE_SECONDS)]
        )
        return self.receive(names, first=replies[-1], started=started)

    def _pushes(self, messages: dict[str, np.ndarray]) -> list[tuple]:
        commands = []
        for name, array in messages.items():
            commands.append(("RPUSH", f"{self.key}:{name}", as_bytes(array)))
            commands.append(("EXPIRE", f"{self.key}:{name}", self.ttl))
        return commands

    def receive(self, names: list[str], first=None, started=None) -> dict[str, np.ndarray]:
        """Pop one message per name (``first``: a BLPOP reply already read for them)."""
        pending = {f"{self.key}:{name}": name for name in names}
        out: dict[str, np.ndarray] = {}
        deadline = (time.monotonic() if started is None else started) + self.timeout
        if first is not None:
            self._take(first, pending, out)
        elif started is not None and self.check is not None:
            self.check()  # the pipelined pop already waited one slice
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = sorted(int(name.rsplit(":", 1)[1]) for name in pending.values())
                raise PeerTimeoutError(missing, self.timeout)
            wait = min(WAIT_SLICE_SECONDS, remaining)
            (reply,) = resp.execute(self.redis, [("BLPOP", *pending, wait)])
            if reply is None:
                if self.check is not None:
                    self.check()
                continue
            self._take(reply, pending, out)
        return out

    def _take(self, reply, pending: dict[str, str], out: dict[str, np.ndarray]) -> None:
        full_key, data = reply
        name = pending.pop(full_key.decode() if isinstance(full_key, bytes) else full_key)
        out[name] = np.frombuffer(data, dtype=self.dtype)
