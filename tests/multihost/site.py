"""The multi-host site: a control host running Redis and worker hosts running Celery workers.

Used by the tests' ``site`` fixture and by ``bench/multihost.py``.
"""

from __future__ import annotations

from tests.harness import stop_workers, wait_until
from tests.multihost.cluster import Cluster, HostRedis, HostWorker


class Site:
    """Host 0 is the control host (Redis: broker, job records, rendezvous); hosts 1.. run one
    Celery worker each when asked. The Celery app of this process points at the control host."""

    def __init__(self, cluster: Cluster, workdir):
        from worker.celery_app import app, configure
        from worker.config import Settings

        self.cluster, self.workdir = cluster, workdir
        self.control = cluster.hosts[0]
        self.workers = cluster.hosts[1:]
        self.redis = HostRedis(self.control, workdir / "redis")
        self.client = self.redis.client
        self.app = app
        configure(app, Settings(redis_url=self.redis.url))
        forget_connections(app)
        self.started: list[HostWorker] = []

    def start_worker(self, host, concurrency: int = 1, **env: str) -> HostWorker:
        log = self.workdir / f"{host.name}-{len(self.started)}.log"
        worker = HostWorker(host, self.redis.url, log, concurrency, **env)
        self.started.append(worker)
        wait_until(
            lambda: self.app.control.ping(destination=[worker.name], timeout=0.5),
            60,
            f"the worker on {host.name} to answer ping",
        )
        return worker

    def stop(self) -> None:
        stop_workers(self.started)
        forget_connections(self.app)


def forget_connections(app) -> None:
    """Drop the app's pooled broker and backend connections: the previous test's control host
    is gone, and a pooled connection to its address would hang instead of reconnecting."""
    app._after_fork()  # Celery's own reset of the connection and producer pools
    app._backend_cache = None
    app._local.__dict__.pop("backend", None)
