"""Worker process signals: BLAS budget, the recovery sweep, the worker heartbeat, study drivers,
the artifact collector, and SIGTERM handing training shards back (``worker.stopping``).

``celeryd_init`` runs in the main worker process before the pool forks: it records the pool size
so each child can pick ``cores // processes`` BLAS threads. ``worker_ready`` starts the sweeper
thread, so a (re)started worker picks up jobs whose shards stopped heartbeating, the heartbeat
that registers this worker's queues and slots (``worker.worker_registry``), the study
driver (``worker.studies.driver``), so it coordinates studies nobody else does, and the artifact
collector thread (one run per cluster per GRADQ_ARTIFACT_COLLECT_SECONDS, under a Redis lock);
it also logs the BLAS kernels training runs on (a warning when ``OPENBLAS_CORETYPE`` forces them).
"""

from __future__ import annotations

import logging
import os

from celery.signals import (
    celeryd_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from worker.config import get_settings
from worker.redis_client import WORKER_TIMEOUTS, connect
from worker.stopping import forward_to_pool
from worker.storage import artifact_store
from worker.storage.collector import Collector
from worker.sweep import Sweeper
from worker.threads import blas_kernels
from worker.worker_registry import WorkerBeat

log = logging.getLogger(__name__)

_sweeper: Sweeper | None = None
_beat: WorkerBeat | None = None
_collector: Collector | None = None
_studies = None  # the StudyDriver of this worker's main process
_pool = None  # the main process's prefork pool, to forward a SIGTERM to (worker.stopping)


@celeryd_init.connect
def _record_pool_size(sender=None, conf=None, options=None, **_) -> None:
    try:
        concurrency = int((options or {}).get("concurrency") or os.cpu_count() or 1)
    except ValueError:  # e.g. an "auto" concurrency: assume one process per core
        concurrency = os.cpu_count() or 1
    os.environ["GRADQ_POOL_PROCESSES"] = str(concurrency)


@worker_shutting_down.connect
def _stop_training_shards(sig=None, **_) -> None:
    if sig in ("SIGTERM", "SIGINT") and _pool is not None:  # a warm shutdown (Ctrl-C: SIGINT)
        forward_to_pool(_pool)


@worker_ready.connect
def _start_sweeper(sender=None, **_) -> None:
    global _sweeper, _beat, _collector, _pool
    _pool = getattr(sender, "pool", None)
    from worker.tasks import start_job

    settings = get_settings()
    url = settings.redis_url
    _sweeper = Sweeper(connect(url, **WORKER_TIMEOUTS), settings, start_job.delay)
    _sweeper.start()
    queues = [queue.name for queue in sender.task_consumer.queues]
    slots = int(os.environ.get("GRADQ_POOL_PROCESSES", "1"))
    # no retries: a beat that fails is skipped and the next one, a period later, tries afresh,
    # so the worker shows as live again within a period or two of Redis coming back
    beats = connect(url, outage_seconds=0, **WORKER_TIMEOUTS)
    _beat = WorkerBeat(beats, settings, sender.hostname, slots, queues)
    _beat.start()
    _collector = Collector(
        artifact_store(connect(url, **WORKER_TIMEOUTS), settings),
        settings.artifact_grace_seconds,
        settings.artifact_collect_seconds,
    )
    _collector.start()
    _start_study_driver(settings)
    _log_blas_kernels()


def _log_blas_kernels() -> None:
    """Say which BLAS kernels training runs on: a forced core is a silent 2x on GEMMs."""
    kernels, forced = blas_kernels()
    if forced is None:
        log.info("NumPy BLAS: %s, chosen for this CPU", kernels)
    else:
        log.warning(
            "NumPy BLAS: %s, forced by OPENBLAS_CORETYPE=%s; unset it to let OpenBLAS pick "
            "this CPU's kernels (an older core's can run GEMMs at half speed)",
            kernels,
            forced,
        )


def _start_study_driver(settings) -> None:
    global _studies
    from worker.studies.driver import StudyDriver  # Optuna is imported by workers only

    _studies = StudyDriver(connect(settings.redis_url, **WORKER_TIMEOUTS), settings)
    _studies.start()


@worker_shutdown.connect
def _stop_sweeper(sender=None, **_) -> None:
    if _sweeper is not None:
        _sweeper.stop()
    if _beat is not None:
        _beat.stop()
    if _collector is not None:
        _collector.stop()
    if _studies is not None:
        _studies.stop()  # releases the leases: another worker takes over at once
