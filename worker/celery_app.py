"""The Celery application: broker and backend on Redis, configured for long training tasks.

Choices follow Celery's documentation for long tasks on a Redis broker:
- JSON only: task arguments are ids, never arrays, and nothing is ever unpickled.
- ``acks_late`` + ``reject_on_worker_lost``: a task whose worker process dies is redelivered, so a
  SIGKILLed shard does not lose its job.
- prefetch multiplier 1: a worker never hoards training tasks that another worker could run.
- ``visibility_timeout`` longer than the longest task, set for the broker *and* the result backend
  (Celery reads it in both places); otherwise Redis redelivers a running task after an hour.
- Redis restarts are ridden out, never fatal: the consumer reconnects forever with backoff
  (``broker_connection_max_retries=None``; Celery's default gives up after 100 tries and exits),
  idle connections are health-checked so one cut by a restart is replaced before use, and the
  result backend retries. Running shards are not cancelled on a broker connection loss: they see the
  outage on their own Redis clients and resume from their checkpoint (``worker.runner``).
- Results are not stored (``task_ignore_result``): nothing reads them, and each was a Redis key
  kept for a day. Only ``ping`` keeps its result, briefly, for the tests that wait on it.
"""

from __future__ import annotations

from celery import Celery

from worker.config import Settings, get_settings
from worker.redis_client import HEALTH_CHECK_SECONDS, WORKER_OUTAGE_SECONDS, retries_for

TRAINING_QUEUE = "gradq.training"
CONTROL_QUEUE = "gradq.control"
RESULT_EXPIRES_SECONDS = 3600


def configure(app: Celery, settings: Settings) -> None:
    """Point ``app`` at ``settings.redis_url`` and apply gradq's task policy."""
    repointed = app.conf.get("broker_url") not in (None, settings.redis_url)
    visibility = settings.task_time_limit_seconds + 3600
    transport = {
        "visibility_timeout": visibility,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        "socket_keepalive": True,
    }
    app.conf.update(
        broker_url=settings.redis_url,
        result_backend=settings.redis_url,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        visibility_timeout=visibility,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_expires=RESULT_EXPIRES_SECONDS,
        result_backend_always_retry=True,
        result_backend_max_retries=retries_for(WORKER_OUTAGE_SECONDS),
        redis_backend_health_check_interval=HEALTH_CHECK_SECONDS,
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_time_limit=settings.task_time_limit_seconds,
        worker_max_memory_per_child=settings.worker_max_memory_mb * 1024,
        task_default_queue=CONTROL_QUEUE,
        task_routes={"worker.tasks.train_shard": {"queue": TRAINING_QUEUE}},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    if repointed:
        # pooled connections still lead to the previous Redis: drop them the way Celery does after
        # a fork (tests and the API point the process's app at another server)
        app._after_fork()


app = Celery("gradq", include=["worker.tasks"])
configure(app, get_settings())
