"""``gradq worker``: one Celery worker process pool, as containers and ``gradq up`` start it."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer


def celery_worker_argv(queues: str, concurrency: int, name: str) -> list[str]:
    """The ``celery worker`` command line gradq uses everywhere (one definition, one policy)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        "-Q",
        queues,
        "-c",
        str(concurrency),
        "-n",
        name,
        # gossip/mingle add start-up latency and chatter; gradq coordinates through Redis keys
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]


def worker(
    concurrency: Annotated[int, typer.Option(help="worker processes (one shard each)")] = 1,
    queues: Annotated[str, typer.Option(help="comma-separated queues")] = "",
    name: Annotated[str, typer.Option(help="Celery node name")] = "gradq@%h",
) -> None:
    """Run a Celery worker for gradq's queues (replaces this process)."""
    from worker.celery_app import CONTROL_QUEUE, TRAINING_QUEUE

    if concurrency < 1:
        raise typer.BadParameter(f"--concurrency must be >= 1, got {concurrency}")
    argv = celery_worker_argv(queues or f"{TRAINING_QUEUE},{CONTROL_QUEUE}", concurrency, name)
    os.execv(argv[0], argv)


def register(app: typer.Typer) -> None:
    """Add ``gradq worker`` to the app."""
    app.command()(worker)
