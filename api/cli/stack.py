"""The local gradq stack as child processes: redis-server, Celery workers and the API.

Every child runs in its own process group so that stopping the stack (Ctrl-C, SIGTERM) also ends
the grandchildren (Celery's pool processes, uvicorn's workers) and leaves nothing behind; each also
gets a parent-death signal (``api.cli.supervise``), so a SIGKILLed ``gradq up`` leaves nothing
either. A child that exits on its own is restarted with backoff (``supervise``), like a process
supervisor would, instead of taking the stack down.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from api.cli.supervise import (
    STABLE_SECONDS,
    die_with_parent,
    port_in_use,
    restart_delay,
    signal_name,
)


@dataclass
class StackConfig:
    """What ``gradq up`` was asked to run."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    redis_url: str | None = None
    redis_port: int = 6390
    state_dir: Path = Path(".state")
    insecure: bool = False


@dataclass
class ManagedProcess:
    """A child and how to start it again."""

    name: str
    process: subprocess.Popen
    log_path: Path
    argv: list[str]
    # SIGKILL for Celery: a warm shutdown would train on for hours with nobody to stop it, and
    # acks_late redelivers its tasks; SIGTERM lets Redis flush its append-only file
    death_signal: int = signal.SIGTERM
    restarts: int = 0
    failures: int = 0  # consecutive quick failures: the backoff exponent
    started_at: float = field(default_factory=time.monotonic)
    restart_at: float | None = None


class PortInUseError(RuntimeError):
    """A port ``gradq up`` needs is taken (often by the children of an earlier ``gradq up``)."""


@dataclass
class LocalStack:
    """Starts the stack's processes in order and stops them in reverse order."""

    config: StackConfig
    processes: list[ManagedProcess] = field(default_factory=list)

    @property
    def redis_url(self) -> str:
        return self.config.redis_url or f"redis://127.0.0.1:{self.config.redis_port}/0"

    @property
    def api_url(self) -> str:
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "::") else self.config.host
        return f"http://{host}:{self.config.port}"

    @property
    def artifact_url(self) -> str:
        """Where models, checkpoints and data sets go: the user's GRADQ_ARTIFACT_URL (an S3
        bucket, a mount), else ``artifacts/`` beside Redis's data in the state directory."""
        default = (self.config.state_dir / "artifacts").resolve().as_uri()
        return os.environ.get("GRADQ_ARTIFACT_URL") or default

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["GRADQ_REDIS_URL"] = self.redis_url
        env["GRADQ_API_URL"] = self.api_url
        # one BLAS thread per worker process: processes x threads must not exceed the cores
        env.setdefault("GRADQ_BLAS_THREADS", "1")
        env["GRADQ_ARTIFACT_URL"] = self.artifact_url
        return env

    def check_ports(self) -> None:
        """Raise PortInUseError naming the first port the stack needs that is already taken."""
        needed = [(self.config.host, self.config.port, "API", "--port")]
        if not self.config.redis_url:
            needed.insert(0, ("127.0.0.1", self.config.redis_port, "Redis", "--redis-port"))
        for host, port, what, option in needed:
            if port_in_use(host, port):
                raise PortInUseError(
                    f"port {port} on {host} (for the {what}) is already in use: stop what holds it"
                    f" (an earlier gradq up?) or pick another with {option}"
                )

    def _popen(self, argv: list[str], log_path: Path, death_signal: int) -> subprocess.Popen:
        preexec = die_with_parent(death_signal)
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.child_env(),
                preexec_fn=preexec,
                start_new_session=preexec is None,  # die_with_parent calls setsid itself
            )

    def _spawn(self, name: str, argv: list[str], death_signal=signal.SIGTERM) -> ManagedProcess:
        logs = self.config.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{name}.log"
        process = self._popen(argv, log_path, death_signal)
        managed = ManagedProcess(name, process, log_path, argv, death_signal)
        self.processes.append(managed)
        return managed

    def supervise(self, report: Callable[[str], None]) -> None:
        """One supervision pass: schedule a restart for each child that exited, with backoff, and
        restart those whose delay has passed; ``report`` gets a line for each."""
        now = time.monotonic()
        for managed in self.processes:
            if managed.process.poll() is None:
                if now - managed.started_at > STABLE_SECONDS:
                    managed.failures = 0
                continue
            if managed.restart_at is None:
                quick = now - managed.started_at < STABLE_SECONDS
                managed.failures = managed.failures + 1 if quick else 1
                delay = restart_delay(managed.failures)
                managed.restart_at = now + delay
                report(
                    f"{managed.name} {signal_name(managed.process.returncode)}; "
                    f"restarting it in {delay:g} s (see {managed.log_path})"
                )
            elif now >= managed.restart_at:
                _signal_group(managed.process, signal.SIGKILL)  # orphaned pool processes
                managed.process = self._popen(managed.argv, managed.log_path, managed.death_signal)
                managed.restarts += 1
                managed.started_at, managed.restart_at = now, None
                pid = managed.process.pid
                report(f"{managed.name} restarted (restart {managed.restarts}, pid {pid})")

    def start_redis(self) -> None:
        """A private redis-server with append-only persistence (skipped with ``--redis-url``)."""
        if self.config.redis_url:
            self._wait_for_redis(timeout=5)
            return
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server not found: apt-get install redis-server "
                "(scripts/quickstart.sh does this), or pass --redis-url"
            )
        data_dir = (self.config.state_dir / "redis").resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        self._spawn(
            "redis",
            [
                binary,
                "--port",
                str(self.config.redis_port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data_dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
            ],
        )
        self._wait_for_redis(timeout=15)

    def _wait_for_redis(self, timeout: float) -> None:
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=1)
        self._wait(lambda: _redis_answers(client), timeout, f"Redis at {self.redis_url}")
        client.close()

    def start_workers(self) -> None:
        """One Celery pool for shard training (``workers`` processes) and one for control tasks."""
        from api.cli.worker_command import celery_worker_argv
        from worker.celery_app import CONTROL_QUEUE, TRAINING_QUEUE

        self._spawn(
            "worker-training",
            celery_worker_argv(TRAINING_QUEUE, self.config.workers, "training@%h"),
            death_signal=signal.SIGKILL,
        )
        self._spawn(
            "worker-control",
            celery_worker_argv(CONTROL_QUEUE, 1, "control@%h"),
            death_signal=signal.SIGKILL,
        )

    def start_api(self) -> None:
        """Start ``gradq serve`` (it repeats the bind check of production) and wait for it."""
        argv = [
            sys.executable,
            "-m",
            "api.cli.main",
            "serve",
            "--host",
            self.config.host,
            "--port",
            str(self.config.port),
        ]
        self._spawn("api", argv + (["--insecure"] if self.config.insecure else []))
        self._wait(self._api_answers, 60, f"the API at {self.api_url}")

    def _api_answers(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for managed in self.processes:
                if managed.process.poll() is not None:
                    raise RuntimeError(
                        f"{managed.name} exited with {managed.process.returncode}; "
                        f"see {managed.log_path}"
                    )
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.1)

    def dead_processes(self) -> list[ManagedProcess]:
        return [m for m in self.processes if m.process.poll() is not None]

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM each process group (newest first), then SIGKILL whatever is left."""
        for managed in reversed(self.processes):
            _signal_group(managed.process, signal.SIGTERM)
            try:
                managed.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(managed.process, signal.SIGKILL)
                managed.process.wait(5)
            # pool children that outlived their parent are still in the group
            _signal_group(managed.process, signal.SIGKILL)
        self.processes.clear()


def _redis_answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
