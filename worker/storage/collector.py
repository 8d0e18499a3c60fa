"""The collector: removes objects no record references, and records whose owner is gone.

Both only after ``grace_seconds``: an upload in flight has an object but no record yet, and an
owner (model, data set, job) is written just after its artifacts' records. One run per cluster
per interval (a Redis lock), from a daemon thread in every worker.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field

from worker.storage.artifacts import ArtifactStore

LOCK = "gradq:artifacts:collector"
log = logging.getLogger(__name__)


@dataclass
class Collected:
    """What one run removed: object keys without records, and records whose owner is gone."""

    unreferenced: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)


def collect(store: ArtifactStore, grace_seconds: float, now: float | None = None) -> Collected:
    """One pass over records and objects; returns what it removed."""
    now = time.time() if now is None else now
    cutoff = now - grace_seconds
    done = Collected()
    records = {record["key"]: record for record in store.records()}
    for key, record in records.items():
        if record["created"] < cutoff and not store.redis.exists(record["owner"]):
            store.remove(key)
            done.orphaned.append(key)
    for stat in store.backend.list():
        if stat.key not in records and stat.modified < cutoff:
            store.delete_object(stat.key)
            done.unreferenced.append(stat.key)
    return done


class Collector(threading.Thread):
    """Runs ``collect`` every ``interval`` seconds, at most once per interval cluster-wide."""

    def __init__(self, store: ArtifactStore, grace_seconds: float, interval: float):
        super().__init__(name="gradq-artifact-collector", daemon=True)
        self.store, self.grace, self.interval = store, grace_seconds, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                token = secrets.token_hex(8)
                if self.store.redis.set(LOCK, token, nx=True, ex=max(1, int(self.interval))):
                    done = collect(self.store, self.grace)
                    if done.unreferenced or done.orphaned:
                        log.info("artifact collector removed %s", done)
            except Exception:  # a store outage must not kill the worker; retry next interval
                log.exception("artifact collector run failed")

    def stop(self) -> None:
        self.stopped.set()
