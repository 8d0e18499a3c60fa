"""The real API server as a uvicorn subprocess on a free loopback port."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import httpx

from tests.harness import REPO_ROOT, free_port, stop_process, wait_until, worker_env


class LiveApi:
    """``uvicorn api.app:app`` pointed at ``redis_url``; ``stop()`` ends it, ``start()`` runs it
    again on the same port (an API restart, as ``gradq up``'s supervisor does)."""

    def __init__(self, redis_url: str, log_path, workers: int = 1, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "api.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ]
        self._env = worker_env(redis_url, **env)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.start()

    def start(self) -> None:
        if self._log.closed:
            self._log = open(self._log.name, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self._argv, cwd=REPO_ROOT, env=self._env, stdout=self._log, stderr=subprocess.STDOUT
        )
        wait_until(self._healthy, 30, f"the API on port {self.port}")

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {self.process.returncode}")
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        stop_process(self.process, grace=10)
        self._log.close()


@contextlib.contextmanager
def cli_pointed_at_live_api(redis_url: str, log_path, tenant: str, key: str, monkeypatch):
    """A LiveApi that knows ``key`` as ``tenant``, with the CLI's GRADQ_API_URL/GRADQ_API_KEY set
    to it; yields the server, stops it and clears the settings cache on exit."""
    from worker.config import get_settings

    server = LiveApi(redis_url, log_path, GRADQ_API_KEYS=f"{tenant}:{key}")
    monkeypatch.setenv("GRADQ_API_URL", server.url)
    monkeypatch.setenv("GRADQ_API_KEY", key)
    get_settings.cache_clear()
    try:
        yield server
    finally:
        get_settings.cache_clear()
        server.stop()
