"""Every event stream (a job's events, a job's followed logs, a study's events) ends cleanly when
the API stops or Redis goes away (real uvicorn, real Redis).

Both endings are an SSE event without ``id:``, so the client's cursor stays on the last job event
and it reconnects with ``Last-Event-ID``.
"""

from __future__ import annotations

import signal
import threading

import httpx
import pytest

from tests.api.live import LiveApi
from tests.api.test_events import parse_sse
from tests.harness import RedisServer, wait_until
from tests.studies.test_coordinator import stored_study
from worker.job_logs import job_log
from worker.jobs import JobStore

pytestmark = pytest.mark.integration


class StreamReader:
    """Reads a job's event stream in a thread; ``text`` grows as chunks arrive."""

    def __init__(self, url: str):
        self.text, self.error = "", None
        self.thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self.thread.start()

    def _read(self, url: str) -> None:
        try:
            with httpx.stream("GET", url, timeout=60) as response:
                for chunk in response.iter_text():
                    self.text += chunk
        except httpx.HTTPError as error:  # a response cut mid-chunk lands here
            self.error = error

    def events(self) -> list[tuple[str, dict]]:
        return parse_sse(self.text) if self.text.strip() else []


def job_events(redis_client) -> str:
    job_id = JobStore(redis_client).create({"name": "never-runs", "shards": 1}, "default")["id"]
    return f"/v1/jobs/{job_id}/events"


def job_log_lines(redis_client) -> str:
    job_id = JobStore(redis_client).create({"name": "never-runs", "shards": 1}, "default")["id"]
    job_log(redis_client, job_id, "a first line", 0)
    return f"/v1/jobs/{job_id}/logs?follow=true"


def study_events(redis_client) -> str:
    return f"/v1/studies/{stored_study(redis_client, tenant='default')['id']}/events"


# every event stream of the API, with the event each sends first
STREAMS = {"job events": (job_events, "state"), "job logs": (job_log_lines, "log"),
           "study events": (study_events, "state")}  # fmt: skip


def open_stream(api: LiveApi, redis_client, stream: str) -> StreamReader:
    path, first = STREAMS[stream]
    reader = StreamReader(api.url + path(redis_client))
    wait_until(lambda: f"event: {first}" in reader.text, 20, f"the {first} event")
    return reader


@pytest.mark.parametrize("stream", STREAMS)
def test_sigterm_closes_an_open_stream_with_a_shutdown_event_and_the_api_exits(
    redis_url, redis_client, tmp_path, stream
):
    api = LiveApi(redis_url, tmp_path / "api.log")
    try:
        reader = open_stream(api, redis_client, stream)

        api.process.send_signal(signal.SIGTERM)
        reader.thread.join(30)
        api.process.wait(30)  # before: it waited as long as the watched job ran

        assert reader.error is None
        names = [name for name, _ in reader.events()]
        assert names == [STREAMS[stream][1], "shutdown"]
        assert "id:" not in reader.text.split("event: shutdown")[1]
        # uvicorn re-raises the signal it handled once it has shut down
        assert api.process.returncode == -signal.SIGTERM
        assert "Cancel" not in (tmp_path / "api.log").read_text()  # no task had to be cancelled
    finally:
        api.stop()


@pytest.mark.parametrize("stream", STREAMS)
def test_a_redis_outage_ends_an_open_stream_with_an_error_event(tmp_path, stream):
    server = RedisServer(tmp_path / "redis")
    api = LiveApi(server.url, tmp_path / "api.log")
    try:
        reader = open_stream(api, server.client, stream)

        server.kill()
        reader.thread.join(60)

        assert not reader.thread.is_alive()
        assert reader.error is None  # a complete response, not one cut mid-chunk
        (last_name, last_data) = reader.events()[-1]
        assert last_name == "error"
        assert last_data["detail"].startswith("redis: unavailable")
    finally:
        api.stop()
        server.stop()
