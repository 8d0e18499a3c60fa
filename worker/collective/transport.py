"""Which path an attempt's vectors take between shards: shared memory (one host), hierarchical
(shared memory inside each host, TCP between one leader per host), direct TCP between all shards
(across hosts) or Redis.

Every shard of an attempt must use the same transport, so the choice is made from data all of them
read after the gang started: at claim each shard stores a host record (``host_record``: host
identity, whether /dev/shm is writable and signals in memory, the address it can listen on for
TCP, its ``GRADQ_ALLREDUCE_TRANSPORT``) in the attempt's ``hosts`` hash, and ``choose_transport``
is a pure function of the N records. ``auto`` picks shm when all records share one identity and
shm works there, else hierarchical when some host runs several shards and every shard has shm and
an address, else tcp when every shard has an address, else redis; ``shm`` on different hosts, or
workers that disagree (``shm`` vs ``tcp``), fail the job with the reason instead of hanging.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from worker.collective.hierarchical import HierarchicalExchange, hosts_of
from worker.collective.local_sgd import sync_arrays
from worker.collective.shm_transport import SHM_DIR, SIGNAL_IN_MEMORY, SharedSegments
from worker.collective.tcp_transport import TcpMesh
from worker.config import Settings
from worker.recovery import attempt_hosts
from worker.replica import EXTRA_SLOTS, vector_bytes

log = logging.getLogger(__name__)


class TransportError(RuntimeError):
    """The shards' settings and hosts admit no common transport (the job fails with this)."""


def host_identity() -> str:
    """Equal for two processes only if they see the same /dev/shm files as the same user.

    Hostname alone is not enough (containers may share one, a reboot reuses it): the boot id
    names the kernel instance and the device number of /dev/shm names the tmpfs mount itself.
    """
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = "?"
    try:
        device = os.stat(SHM_DIR).st_dev
    except OSError:
        device = "?"
    return f"{socket.gethostname()}/{boot_id}/shm-dev {device}/uid {os.getuid()}"


def shm_usable() -> bool:
    return SHM_DIR.is_dir() and os.access(SHM_DIR, os.W_OK | os.X_OK)


def listen_address(settings: Settings) -> str | None:
    """The address this host's shards listen on for TCP: ``GRADQ_ALLREDUCE_ADDRESS``, else the
    local address of the route to Redis (the interface the other hosts reach this one through
    too, on any network where they all reach Redis); None if there is no such route."""
    if settings.allreduce_address:
        return settings.allreduce_address
    target = urlparse(settings.redis_url).hostname or "127.0.0.1"
    try:
        family = socket.getaddrinfo(target, 1, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family[0], socket.SOCK_DGRAM) as probe:
            probe.connect(family[4])  # UDP connect sends nothing: it only picks the route
            return probe.getsockname()[0]
    except OSError:
        return None


def host_record(settings: Settings) -> str:
    """What this shard stores in its attempt's ``hosts`` hash at claim (JSON)."""
    return json.dumps(
        {
            "host": host_identity(),
            "shm": shm_usable(),
            "shm_signal": SIGNAL_IN_MEMORY,  # the hierarchical transport needs x86-64 order
            "tcp": listen_address(settings),
            "setting": settings.allreduce_transport,
        }
    )


def choose_transport(records: list[dict | None]) -> str:
    """``"shm"``, ``"hierarchical"``, ``"tcp"`` or ``"redis"`` for shards with these host records
    (None: a shard that stored none, e.g. an older worker: an unknown host with setting ``auto``).
    """
    records = [r or {"host": None, "shm": False, "setting": "auto"} for r in records]
    wanted = {r["setting"] for r in records} - {"auto"}
    if len(wanted) > 1:
        by_setting = {s: [i for i, r in enumerate(records) if r["setting"] == s] for s in wanted}
        raise TransportError(
            "workers disagree on GRADQ_ALLREDUCE_TRANSPORT: "
            + ", ".join(f"{s!r} on shard(s) {shards}" for s, shards in sorted(by_setting.items()))
        )
    one_host = len({r["host"] for r in records}) == 1 and records[0]["host"] is not None
    shm_ok = one_host and all(r["shm"] for r in records)
    if wanted == {"shm"} and not shm_ok:
        hosts = "; ".join(f"shard {i}: {r['host']}" for i, r in enumerate(records))
        unusable = [i for i, r in enumerate(records) if not r["shm"]]
        problem = (
            f"/dev/shm is not writable for shard(s) {unusable} ({hosts})"
            if one_host
            else f"the shards run on different hosts ({hosts})"
        )
        raise TransportError(
            f"GRADQ_ALLREDUCE_TRANSPORT=shm needs every shard on one host with a writable "
            f"/dev/shm, but {problem}"
        )
    tcp_ok = all(r.get("tcp") for r in records)
    if wanted == {"tcp"} and not tcp_ok:
        missing = [i for i, r in enumerate(records) if not r.get("tcp")]
        raise TransportError(
            f"GRADQ_ALLREDUCE_TRANSPORT=tcp needs an address to listen on for every shard, but "
            f"shard(s) {missing} found none (set GRADQ_ALLREDUCE_ADDRESS)"
        )
    known = all(r["host"] is not None for r in records)
    hierarchical_ok = known and tcp_ok and all(r["shm"] and r.get("shm_signal") for r in records)
    if wanted == {"hierarchical"} and not hierarchical_ok:
        unusable = [
            i
            for i, r in enumerate(records)
            if r["host"] is None or not (r["shm"] and r.get("shm_signal") and r.get("tcp"))
        ]
        raise TransportError(
            "GRADQ_ALLREDUCE_TRANSPORT=hierarchical needs a writable /dev/shm on an x86-64 host "
            f"and an address to listen on for every shard, but shard(s) {unusable} lack one"
        )
    if wanted == {"redis"}:
        return "redis"
    if wanted == {"tcp"}:
        return "tcp"
    if wanted == {"hierarchical"}:
        return "hierarchical"
    if shm_ok:
        return "shm"
    shared_host = hierarchical_ok and len(hosts_of(records)) < len(records)
    if shared_host:
        return "hierarchical"  # with one shard per host it would be the tcp scatter, plus copies
    return "tcp" if tcp_ok else "redis"


def segment_bytes(replica) -> int:
    """The largest vector ``shard.train`` allreduces: the gradient (+ its extra slots), the
    batchnorm buffers, the validation sums, or with local SGD the parameters and float optimizer
    state."""
    model, spec = replica.model, replica.spec
    sizes = [vector_bytes(model.parameters(), EXTRA_SLOTS), vector_bytes(model.buffers(), 0), 3 * 8]
    if int(spec.get("sync_every") or 1) > 1:
        state = sync_arrays(model.parameters(), replica.optimizer.state_dict())
        sizes.append(vector_bytes(state, 1))
    return max(sizes)


@contextmanager
def attempt_transport(ctx, replica):
    """Set ``ctx.transport`` (and ``ctx.shm`` or ``ctx.mesh``, connected) for the attempt; on
    exit, however the attempt ends, unmap and unlink this shard's segment or close its sockets."""
    records = []
    if ctx.num_shards == 1:
        ctx.transport = "none"
    else:
        hosts = attempt_hosts(ctx.store.redis, ctx.job_id, ctx.attempt)
        records = [json.loads(hosts[i]) if i in hosts else None for i in range(ctx.num_shards)]
        ctx.transport = choose_transport(records)
    compression = replica.spec.get("compression")
    log.info(
        "job %s attempt %d shard %d: allreduce transport %s%s",
        ctx.job_id,
        ctx.attempt,
        ctx.shard,
        ctx.transport,
        _compression_note(compression, ctx.transport),
    )
    if ctx.transport == "tcp":
        with _tcp_mesh(ctx, records, compression):
            yield
        return
    if ctx.transport == "hierarchical":
        with _hierarchical(ctx, records, replica):
            yield
        return
    if ctx.transport != "shm":
        yield
        return
    with SharedSegments(
        ctx.job_id, ctx.attempt, ctx.shard, ctx.num_shards, segment_bytes(replica)
    ) as segments:
        timeout = ctx.settings.peer_timeout_seconds
        segments.connect(ctx.data, ctx.key("shm-open"), timeout, ctx.check_while_waiting)
        ctx.shm = segments
        try:
            yield
        finally:
            ctx.shm = None


def _compression_note(compression: str | None, transport: str) -> str:
    """What the log says of the spec's ``compression`` on ``transport``: only the network hops
    (tcp, hierarchical's) encode; shared memory and Redis carry the exact vectors."""
    if compression is None:
        return ""
    if transport in ("tcp", "hierarchical"):
        return f", {compression} compression on the network"
    return f" ({compression} compression does not apply: no network hop)"


@contextmanager
def _connected(ctx, exchange, rendezvous: str):
    """Enter ``exchange``, connect it to its peers through ``ctx.key(rendezvous)`` and make it
    ``ctx.mesh`` for the attempt; closed (sockets, segments) on exit."""
    with exchange:
        timeout = ctx.settings.peer_timeout_seconds
        exchange.connect(ctx.store.redis, ctx.key(rendezvous), timeout, ctx.check_while_waiting)
        ctx.mesh = exchange
        try:
            yield
        finally:
            ctx.mesh = None


@contextmanager
def _tcp_mesh(ctx, records: list[dict | None], compression: str | None):
    """This shard's connected ``TcpMesh`` in ``ctx.mesh`` for the attempt; closed on exit."""
    address = records[ctx.shard]["tcp"]
    with _connected(ctx, TcpMesh(ctx.shard, ctx.num_shards, address, compression), "tcp"):
        yield


@contextmanager
def _hierarchical(ctx, records: list[dict], replica):
    """This shard's connected ``HierarchicalExchange`` in ``ctx.mesh`` (it has the mesh's
    ``allreduce``) for the attempt; its segment unlinked and sockets closed on exit."""
    exchange = HierarchicalExchange(
        hosts_of(records),
        ctx.shard,
        ctx.job_id,
        ctx.attempt,
        segment_bytes(replica),
        records[ctx.shard]["tcp"],
        replica.spec.get("compression"),
    )
    with _connected(ctx, exchange, "hier"):
        yield
