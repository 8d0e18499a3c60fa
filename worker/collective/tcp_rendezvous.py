"""The tcp transport's rendezvous: one authenticated socket per pair of an attempt's shards.

Every shard listens on its host's address (port chosen by the kernel) and publishes
``address:port`` in the attempt's hash in Redis; the first shard to arrive sets the attempt's
random token (SET NX). Shard j then connects to every shard i < j and presents MAGIC + token + j;
a listener accepts only the attempt's awaited peers, each once, and closes any other connection
(wrong token, unknown or duplicate shard). Dials only go downwards, so shard 0 only accepts and no
two shards wait for each other. Every wait has the deadline and runs ``check()``.
"""

from __future__ import annotations

import hmac
import secrets
import socket
import struct
import time

from worker.collective.allreduce import WAIT_SLICE_SECONDS, PeerLinkError, PeerTimeoutError

MAGIC = b"GQAR"
HELLO = struct.Struct("<4s32si")  # magic, token (hex), shard index
HELLO_SECONDS = 5.0  # a connection must say who it is this fast, or it is dropped


def connect_peers(listener, me: int, n: int, redis, key: str, timeout: float, check):
    """Publish ``listener``'s endpoint, agree on the token, -> {peer: connected socket}."""
    host, port = listener.getsockname()[:2]
    pipe = redis.pipeline(transaction=False)
    pipe.hset(f"{key}:endpoints", me, f"{host}:{port}")
    pipe.expire(f"{key}:endpoints", 3600)
    pipe.set(f"{key}:token", secrets.token_hex(16), nx=True, ex=3600)
    pipe.get(f"{key}:token")
    token = pipe.execute()[-1]
    deadline = time.monotonic() + timeout
    while len(endpoints := redis.hgetall(f"{key}:endpoints")) < n:
        if check is not None:
            check()
        if time.monotonic() >= deadline:
            missing = [i for i in range(n) if str(i).encode() not in endpoints]
            raise PeerTimeoutError(missing, timeout)
        time.sleep(0.05)
    peers = {}
    for i in range(me):
        peer_host, peer_port = endpoints[str(i).encode()].decode().rsplit(":", 1)
        peers[i] = _dial(me, i, peer_host, int(peer_port), token, deadline, check)
    peers.update(_accept(listener, me, n, token, deadline, check, timeout))
    return peers


def _dial(me, i, host, port, token, deadline, check) -> socket.socket:
    """Connect to shard i (retrying until it listens) and wait for its accept byte.

    The accept byte may take as long as shard i's own dialling: wait for it until the
    deadline rather than reconnect (a dropped half-accepted socket would confuse i)."""
    while True:
        sock = None
        try:
            sock = socket.create_connection((host, port), timeout=WAIT_SLICE_SECONDS)
            sock.sendall(HELLO.pack(MAGIC, token, me))
            while True:
                sock.settimeout(WAIT_SLICE_SECONDS)
                try:
                    answer = sock.recv(1)
                    break
                except TimeoutError:
                    if check is not None:
                        check()
                    if time.monotonic() >= deadline:
                        raise
            if answer == b"\x01":
                return sock
            raise PeerLinkError(f"shard {i} at {host}:{port} refused shard {me}")
        except OSError as error:
            if sock is not None:
                sock.close()
            if check is not None:
                check()
            if time.monotonic() >= deadline:
                raise PeerLinkError(f"cannot reach shard {i} at {host}:{port}: {error}") from None
            time.sleep(0.05)
        except BaseException:
            if sock is not None:
                sock.close()
            raise


def _accept(listener, me, n, token, deadline, check, timeout) -> dict[int, socket.socket]:
    waiting, peers = set(range(me + 1, n)), {}
    listener.settimeout(WAIT_SLICE_SECONDS)
    while waiting:
        if time.monotonic() >= deadline:
            raise PeerTimeoutError(sorted(waiting), timeout)
        try:
            sock, _ = listener.accept()
        except TimeoutError:
            if check is not None:
                check()
            continue
        peer = _hello(sock, token, waiting)
        if peer is None:
            sock.close()  # not the attempt's token, or not a peer we wait for
            continue
        sock.sendall(b"\x01")
        waiting.discard(peer)
        peers[peer] = sock
    return peers


def _hello(sock: socket.socket, token: bytes, waiting: set[int]) -> int | None:
    """The peer index a new connection presents, if it knows the token and is awaited."""
    sock.settimeout(HELLO_SECONDS)
    data = bytearray()
    try:
        while len(data) < HELLO.size:
            chunk = sock.recv(HELLO.size - len(data))
            if not chunk:
                return None
            data += chunk
    except OSError:
        return None
    magic, presented, peer = HELLO.unpack(data)
    if magic != MAGIC or not hmac.compare_digest(presented, token) or peer not in waiting:
        return None
    return peer
