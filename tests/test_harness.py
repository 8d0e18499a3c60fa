"""The test harness itself: the private Redis and a real Celery worker round trip."""

from __future__ import annotations

import pytest
import redis

from tests.harness import RedisServer, wait_until

pytestmark = pytest.mark.integration


def test_private_redis_starts_on_a_free_port_and_stops(tmp_path):
    server = RedisServer(tmp_path / "r")
    assert server.port != 6379
    assert server.client.set("k", "v") and server.client.get("k") == b"v"

    server.stop()

    assert server.process.poll() is not None
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=server.port, socket_connect_timeout=0.5).ping()


def test_a_task_round_trips_through_a_real_worker(start_worker):
    from worker.tasks import ping

    start_worker(concurrency=1)

    assert ping.delay("hello").get(timeout=30) == "hello"


def test_worker_stop_leaves_no_child_behind(start_worker):
    worker = start_worker(concurrency=2)
    children = wait_until(worker.child_pids, 10, "pool children")

    worker.stop()

    import os

    for pid in children:
        wait_until(lambda pid=pid: not _alive(pid), 10, f"child {pid} to exit")
    assert worker.process.poll() is not None
    assert not any(_alive(pid) for pid in children)
    os.sync()


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
