"""worker.collective.resp.execute: pipelined replies parsed straight from the socket, large
ones unsplit."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import redis as redis_lib

from tests.harness import wait_until
from worker.collective import resp
from worker.collective.allreduce import as_bytes, data_client

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("protocol", [2, 3])
def test_replies_of_every_kind_come_back_in_order(redis_url, protocol):
    client = data_client(redis_url, protocol=protocol)
    vector = np.arange(300_001, dtype=np.float32)  # a large bulk (> LARGE_BULK), odd length

    replies = resp.execute(
        client,
        [
            ("RPUSH", "t:resp:list", as_bytes(vector)),
            ("EXPIRE", "t:resp:list", 60),
            ("SET", "t:resp:small", b"abc"),
            ("GET", "t:resp:small"),
            ("GET", "t:resp:missing"),
            ("BLPOP", "t:resp:list", 1),
            ("BLPOP", "t:resp:list", 0.05),
        ],
    )

    assert replies[:5] == [1, 1, b"OK", b"abc", None]
    key, data = replies[5]
    assert key == b"t:resp:list"
    np.testing.assert_array_equal(np.frombuffer(data, np.float32), vector)
    assert replies[6] is None  # timed out
    assert client.dbsize() == 1  # the connection is still in step: redis-py can use it


def test_a_large_reply_is_a_writable_buffer(redis_url):
    client = data_client(redis_url)
    client.set("t:resp:big", as_bytes(np.ones(100_000, np.float32)))

    (data,) = resp.execute(client, [("GET", "t:resp:big")])

    array = np.frombuffer(data, np.float32)
    array += 1  # no copy needed to work in place
    assert array.sum() == 200_000


def test_an_error_reply_raises_after_the_pipeline_is_read(redis_url):
    client = data_client(redis_url)
    client.set("t:resp:str", b"x")

    with pytest.raises(redis_lib.ResponseError, match="WRONGTYPE"):
        resp.execute(client, [("RPUSH", "t:resp:str", b"y"), ("SET", "t:resp:after", b"1")])

    assert client.get("t:resp:after") == b"1"  # later commands ran, the connection is usable


def test_a_connection_dropped_by_the_server_is_replaced(redis_url, redis_client):
    client = data_client(redis_url)
    # the session's server has other clients (an earlier test's last command may be a SET too):
    # the connection to kill is the one that appeared with this SET
    before = {entry["id"] for entry in redis_client.client_list()}
    resp.execute(client, [("SET", "t:resp:k", b"1")])  # the pool now holds one connection
    killed = [
        redis_client.client_kill_filter(_id=entry["id"])
        for entry in redis_client.client_list()
        if entry["cmd"] == "set" and entry["id"] not in before
    ]
    assert killed == [1]

    assert resp.execute(client, [("GET", "t:resp:k")]) == [b"1"]


def test_a_connection_dropped_during_a_blocking_pop_is_retried_once(redis_url, redis_client):
    client = data_client(redis_url)
    result: list = []
    waiter = threading.Thread(
        target=lambda: result.append(resp.execute(client, [("BLPOP", "t:resp:q", 5)]))
    )
    waiter.start()

    def blocked_ids() -> list[int]:
        return [e["id"] for e in redis_client.client_list() if e["cmd"] == "blpop"]

    first = wait_until(blocked_ids, 5, "the blocking pop")
    redis_client.client_kill_filter(_id=first[0])
    wait_until(lambda: (ids := blocked_ids()) and ids != first, 5, "the retried pop")
    redis_client.rpush("t:resp:q", b"late")
    waiter.join(5)

    assert result == [[[b"t:resp:q", b"late"]]]  # one execute, one reply: the pop
