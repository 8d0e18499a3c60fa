"""Process helpers for integration tests: a private redis-server and real Celery workers.

Everything binds to 127.0.0.1 on a free port in a temp dir, so tests never touch the Redis that
may be running on 6379.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import redis

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, what: str, interval=0.05):
    """Poll ``condition`` until it returns a truthy value; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class RedisServer:
    """A redis-server child process on a free loopback port, data in ``workdir``."""

    def __init__(self, workdir: Path, appendonly: bool = False):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH (apt-get install redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        workdir.mkdir(parents=True, exist_ok=True)
        self.argv = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(workdir),
            "--save",
            "",
            "--appendonly",
            "yes" if appendonly else "no",
            "--maxmemory-policy",
            "noeviction",
        ]
        self.client = redis.Redis.from_url(self.url)
        self.start()

    def start(self) -> None:
        """Run redis-server with the same command line (same port, same data directory)."""
        self.process = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(
            lambda: redis_answers(self.client, self.process),
            10,
            f"redis-server on port {self.port}",
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to redis-server and wait for it to exit (an outage begins)."""
        self.process.send_signal(sig)
        self.process.wait(10)
        self.client.connection_pool.disconnect()

    def stop(self) -> None:
        self.client.close()
        stop_process(self.process, grace=5)


def process_alive(pid: int) -> bool:
    """Is ``pid`` a running process (not gone, not a zombie waiting for its parent)?"""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def stop_process_group(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM to the group ``process`` leads (a worker and its pool children), up to ``grace``
    seconds for the leader to exit, then SIGKILL to the group."""
    stop_process_groups([process], grace)


def stop_process_groups(processes: list[subprocess.Popen], grace: float) -> None:
    """``stop_process_group`` for several groups at once: SIGTERM to every group first, then
    one shared ``grace`` for their leaders, then SIGKILL to the groups still running."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def stop_workers(workers: list, grace: float = 15.0) -> None:
    """Stop worker subprocesses (``.process`` leads a group; ``.stop()``) together. One at a
    time, each idle worker's warm shutdown (1-2 s) added up in the teardown of every
    many-worker test."""
    stop_process_groups([w.process for w in workers if w.process.poll() is None], grace)
    for worker in workers:
        worker.stop()  # each exited now: what it does then (e.g. kill orphaned pool children)


def redis_answers(client: redis.Redis, process: subprocess.Popen) -> bool:
    """True once ``client`` gets a PING answer; RuntimeError if redis-server ``process`` exited."""
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}") from None
        return False


def stop_process(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM, up to ``grace`` seconds to exit, then SIGKILL."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def worker_env(redis_url: str, **extra: str) -> dict[str, str]:
    """Environment for a child process pointed at ``redis_url`` with the repo importable."""
    env = dict(os.environ)
    env["GRADQ_REDIS_URL"] = redis_url
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


class CeleryWorker:
    """A real ``celery worker`` subprocess (prefork pool) in its own process group."""

    def __init__(
        self,
        redis_url: str,
        concurrency: int = 2,
        queues: str | None = None,
        name: str | None = None,
        log_path: Path | None = None,
        **env: str,
    ):
        from api.cli.worker_command import celery_worker_argv
        from worker.celery_app import CONTROL_QUEUE, TRAINING_QUEUE

        self.name = name or f"w{free_port()}@test"
        queues = queues or f"{TRAINING_QUEUE},{CONTROL_QUEUE}"
        self.log_path = log_path
        log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            celery_worker_argv(queues, concurrency, self.name),
            cwd=REPO_ROOT,
            env=worker_env(redis_url, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def child_pids(self) -> list[int]:
        """Pids of the pool's child processes (the ones that run tasks)."""
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            stop_process_group(self.process, grace=15)
        else:
            # the main process is gone; make sure no orphaned pool child survives it
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def run_in_threads(work: Callable[[int], object], count: int, timeout: float = 30) -> list:
    """``work(i)`` for i in range(count), each in its own thread (as shard processes would run);
    returns the results in order and re-raises the first error in the caller."""
    results: list = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = work(i)
        except Exception as error:  # surfaced in the calling thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError(f"{count} threads did not finish in {timeout}s")
    if errors:
        raise errors[0]
    return results


def npz_bytes(**arrays) -> bytes:
    """The bytes of an ``.npz`` holding ``arrays`` (what a user uploads)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()
