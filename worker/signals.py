"""Worker process signals: BLAS thread budget, the recovery sweep, the study coordinators and
the artifact collector.

``celeryd_init`` runs in the main worker process before the pool forks: it records the pool size
so each child can pick ``cores // processes`` BLAS threads. ``worker_ready`` starts the sweeper
thread, so a (re)started worker picks up jobs whose shards stopped heartbeating, the study
driver (``worker.studies.driver``), so it coordinates studies nobody else does, and the artifact
collector thread (one run per cluster per GRADQ_ARTIFACT_COLLECT_SECONDS, under a Redis lock).
"""

from __future__ import annotations

import os

import redis as redis_lib
from celery.signals import celeryd_init, worker_ready, worker_shutdown

from worker.config import get_settings
from worker.recovery import Sweeper
from worker.storage import artifact_store
from worker.storage.collector import Collector

_sweeper: Sweeper | None = None
_collector: Collector | None = None
_studies = None  # the StudyDriver of this worker's main process


@celeryd_init.connect
def _record_pool_size(sender=None, conf=None, options=None, **_) -> None:
    try:
        concurrency = int((options or {}).get("concurrency") or os.cpu_count() or 1)
    except ValueError:  # e.g. an "auto" concurrency: assume one process per core
        concurrency = os.cpu_count() or 1
    os.environ["GRADQ_POOL_PROCESSES"] = str(concurrency)


@worker_ready.connect
def _start_sweeper(sender=None, **_) -> None:
    global _sweeper, _collector
    from worker.tasks import start_job

    settings = get_settings()
    client = redis_lib.Redis.from_url(settings.redis_url)
    _sweeper = Sweeper(client, settings, start_job.delay)
    _sweeper.start()
    _collector = Collector(
        artifact_store(client, settings),
        settings.artifact_grace_seconds,
        settings.artifact_collect_seconds,
    )
    _collector.start()
    _start_study_driver(settings)


def _start_study_driver(settings) -> None:
    global _studies
    from worker.studies.driver import StudyDriver  # Optuna is imported by workers only

    _studies = StudyDriver(redis_lib.Redis.from_url(settings.redis_url), settings)
    _studies.start()


@worker_shutdown.connect
def _stop_sweeper(sender=None, **_) -> None:
    if _sweeper is not None:
        _sweeper.stop()
    if _collector is not None:
        _collector.stop()
    if _studies is not None:
        _studies.stop()  # releases the leases: another worker takes over at once
