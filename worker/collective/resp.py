"""Pipelines for bulk vectors whose large replies land in one buffer straight from the socket.

redis-py's pure-Python reply parser copies a 1 MB bulk string three times (socket chunk ->
BytesIO -> slice) and costs 0.35-1.3 ms per 0.94 MB on the shared 2-core box; reading it with
``recv_into`` into one preallocated buffer costs ~0.2 ms (measured, bench/scaling.py). So the
allreduce sends through a redis-py connection (its connect, auth, database selection and
command packer) but parses the replies of its own commands itself. Large bulk replies come
back as writable ``memoryview``s (``numpy.frombuffer`` reads them without a copy); small ones as
``bytes``. Any error mid-reply disconnects the connection, so a half-read reply never reaches
the next command.
"""

from __future__ import annotations

import redis as redis_lib
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

LARGE_BULK = 1 << 16  # bulk replies from this size on are read into their own buffer
READ_CHUNK = 1 << 16  # headers and small replies are read this much at a time


def execute(redis: redis_lib.Redis, commands: list[tuple]) -> list:
    """Send ``commands`` in one pipeline (no MULTI) and return their replies in order.

    A Redis error reply raises ``ResponseError`` after every reply has been read. A dropped
    connection is retried once on a fresh one, as redis-py's own pipelines do (a push repeated
    that way only leaves a duplicate that its TTL removes; a pop lost with the connection
    surfaces as the peer's deadline).
    """
    try:
        replies = _execute_once(redis, commands)
    except (RedisConnectionError, OSError):
        replies = _execute_once(redis, commands)
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


def _execute_once(redis: redis_lib.Redis, commands: list[tuple]) -> list:
    pool = redis.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command(conn.pack_commands(commands))
        reader = _Reader(conn._sock)
        replies = [reader.reply() for _ in commands]
        if reader.unread():
            raise RedisConnectionError("unexpected bytes after the pipeline's replies")
    except BaseException:
        conn.disconnect()  # a half-read reply must never reach the next command
        raise
    finally:
        pool.release(conn)
    return replies


class _Reader:
    """A RESP2/RESP3 reply reader over a blocking socket (the types these commands return)."""

    def __init__(self, sock):
        self.sock, self.buffer, self.pos = sock, bytearray(), 0

    def unread(self) -> int:
        return len(self.buffer) - self.pos

    def _fill(self) -> None:
        if self.pos:
            del self.buffer[: self.pos]
            self.pos = 0
        chunk = self.sock.recv(READ_CHUNK)
        if not chunk:
            raise RedisConnectionError("Redis closed the connection")
        self.buffer += chunk

    def _line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n", self.pos)) < 0:
            self._fill()
        line = bytes(self.buffer[self.pos : end])
        self.pos = end + 2
        return line

    def _bulk(self, length: int):
        if length < LARGE_BULK:
            while self.unread() < length + 2:
                self._fill()
            data = bytes(self.buffer[self.pos : self.pos + length])
            self.pos += length + 2
            return data
        out = bytearray(length + 2)  # + CRLF, read in the same calls
        view = memoryview(out)
        have = min(self.unread(), length + 2)
        view[:have] = self.buffer[self.pos : self.pos + have]
        self.pos += have
        while have < length + 2:
            got = self.sock.recv_into(view[have:])
            if not got:
                raise RedisConnectionError("Redis closed the connection")
            have += got
        return view[:length]

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            return None if rest == b"-1" else self._bulk(int(rest))
        if kind == b"*":
            return None if rest == b"-1" else [self.reply() for _ in range(int(rest))]
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest
        if kind == b"_":  # RESP3 null (redis-py may negotiate RESP3)
            return None
        if kind == b",":
            return float(rest)
        if kind == b"#":
            return rest == b"t"
        if kind == b"%":
            return {self.reply(): self.reply() for _ in range(int(rest))}
        if kind == b"-":
            return ResponseError(rest.decode("utf-8", "replace"))
        raise RedisConnectionError(f"unexpected reply type {kind!r}")
