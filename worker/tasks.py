"""Thin Celery tasks: they take ids and call into the worker modules."""

from __future__ import annotations

from worker.celery_app import app


@app.task(name="worker.tasks.ping")
def ping(value: str) -> str:
    """Echo ``value``: lets tests and ``/readyz`` prove a worker is consuming."""
    return value
