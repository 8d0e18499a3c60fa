"""One real stack for a whole browser-test module: private Redis, a Celery worker, uvicorn."""

from __future__ import annotations

import httpx

from tests.api.live import LiveApi
from tests.harness import CeleryWorker, wait_until

TERMINAL = ("succeeded", "failed", "cancelled")


class LiveStack:
    """``url``; ``api(key)`` -> an httpx client with that key; ``stop()`` ends everything."""

    def __init__(self, redis_url: str, workdir, api_keys: str, concurrency: int = 2):
        self.worker = CeleryWorker(redis_url, concurrency=concurrency, log_path=workdir / "w.log")
        self.server = LiveApi(redis_url, workdir / "api.log", GRADQ_API_KEYS=api_keys)
        self.url = self.server.url
        wait_until(self._ready, 60, "the API to see a Celery worker (/readyz)", interval=0.25)

    def _ready(self) -> bool:
        return httpx.get(self.url + "/readyz", timeout=5).status_code == 200

    def api(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"})

    def wait_for_status(self, key: str, job_id: str, wanted, timeout: float = 120) -> dict:
        """The job record once its status is in ``wanted`` (or terminal: then it must be)."""
        with self.api(key) as client:

            def reached():
                record = client.get(f"/v1/jobs/{job_id}").json()
                return record if record["status"] in (*wanted, *TERMINAL) else None

            record = wait_until(reached, timeout, f"job {job_id} to reach {wanted}", interval=0.1)
        assert record["status"] in wanted, (record["status"], record.get("status_reason"))
        return record

    def stop(self) -> None:
        self.server.stop()
        self.worker.stop()
