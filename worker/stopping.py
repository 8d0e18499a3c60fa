"""A worker being stopped hands its running shards back without counting a restart.

``gradq up`` stops its Celery workers with SIGTERM to each process group, and a container
runtime sends SIGTERM to the worker's main process. Celery resets SIGTERM to its default in pool
processes, so a training shard died of it like a crash: its task was redelivered, the job restarted
from its checkpoint and the restart was counted against ``max_restarts``, although nothing failed.

Now a pool process that receives SIGTERM while it runs a shard task sets ``STOP``. A training
shard sees it at its next flag check (``ShardContext.check_flags``, at most 0.1 s apart), agrees
with its peers on a step where shard 0 saves a checkpoint (``worker.planned_stop``), and there
requeues its job's attempt with ``restarts`` unchanged (``worker.runner``); a shard waiting for
its gang gives its place back and re-sends its task (``worker.gang``), as when it yields to an
older gang; a shard still preparing (loading its data) does so once prepared. A pool process
with no shard task dies of the signal as before. The main process forwards its SIGTERM to its
pool (``forward_to_pool``), so a warm shutdown ends in seconds instead of waiting for the job
to finish.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger(__name__)

STOP = threading.Event()  # this process was asked to stop: training shards requeue and return


class WorkerStoppingError(RuntimeError):
    """This worker is stopping (SIGTERM): the shard hands its attempt back, uncounted."""


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    # the shard requeues at its next flag check; a repeat (the main process forwards the SIGTERM
    # that ``gradq up`` also sent the whole group) changes nothing, and a shard that never gets
    # there is SIGKILLed by whoever stops it, after their timeout
    STOP.set()


class stoppable:
    """Context of a shard task: inside it, SIGTERM only sets ``STOP`` (read by the gang wait and
    the per-step checks). Outside, the pool process's own handler (billiard's, installed after
    ``worker_process_init``) applies: an idle process dies of it as before."""

    def __enter__(self) -> stoppable:
        STOP.clear()
        self.previous = None
        if threading.current_thread() is threading.main_thread():  # where signals are handled
            self.previous = signal.signal(signal.SIGTERM, _on_sigterm)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def forward_to_pool(pool) -> None:
    """Send SIGTERM to each process of Celery's prefork ``pool`` (the main process's warm
    shutdown otherwise waits for running shards, which train until their job ends)."""
    try:
        pids = [process.pid for process in pool._pool._pool]
    except AttributeError:  # not a prefork pool (solo, threads): nothing to forward to
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    log.info("forwarded SIGTERM to pool processes %s", pids)
