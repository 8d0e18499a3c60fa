"""The Celery application: broker and backend on Redis, configured for long training tasks.

Choices follow Celery's documentation for long tasks on a Redis broker:
- JSON only: task arguments are ids, never arrays, and nothing is ever unpickled.
- ``acks_late`` + ``reject_on_worker_lost``: a task whose worker process dies is redelivered, so a
  SIGKILLed shard does not lose its job.
- prefetch multiplier 1: a worker never hoards training tasks that another worker could run.
- ``visibility_timeout`` longer than the longest task, set for the broker *and* the result backend
  (Celery reads it in both places); otherwise Redis redelivers a running task after an hour.
"""

from __future__ import annotations

from celery import Celery

from worker.config import Settings, get_settings

TRAINING_QUEUE = "gradq.training"
CONTROL_QUEUE = "gradq.control"


def configure(app: Celery, settings: Settings) -> None:
    """Point ``app`` at ``settings.redis_url`` and apply gradq's task policy."""
    visibility = settings.task_time_limit_seconds + 3600
    transport = {"visibility_timeout": visibility}
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
        result_expires=24 * 3600,
        task_time_limit=settings.task_time_limit_seconds,
        worker_max_memory_per_child=settings.worker_max_memory_mb * 1024,
        task_default_queue=CONTROL_QUEUE,
        task_routes={"worker.tasks.train_shard": {"queue": TRAINING_QUEUE}},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )


app = Celery("gradq", include=["worker.tasks"])
configure(app, get_settings())
