"""GET /v1/jobs/{id}/events: state first, then the job's events in order, ending after the last."""

from __future__ import annotations

import json
import threading

from tests.api.specs import digits_spec
from tests.harness import wait_until
from worker.jobs import JobStore


def parse_sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def train_in_background(redis_client, job_id: str) -> threading.Thread:
    """Plays a worker: once the SSE reader is waiting on the stream, runs the job to success."""

    def run():
        wait_until(
            lambda: redis_client.info("clients")["blocked_clients"] >= 1,
            10,
            "the SSE reader to block on the job's stream",
        )
        store = JobStore(redis_client)
        store.transition(job_id, "running", "training")
        for step in (1, 2, 3):
            store.update(job_id, {"step": step, "steps_total": 3, "train_loss": 1.0 / step})
        store.update(job_id, {"epoch": 1, "history": [{"epoch": 1}]}, event="epoch")
        store.transition(job_id, "succeeded", changes={"model_id": "mdl_x"})

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_live_client_gets_state_then_events_in_order_then_end(alice, redis_client):
    job_id = alice.post("/v1/jobs", json=digits_spec()).json()["id"]
    thread = train_in_background(redis_client, job_id)
    response = alice.get(f"/v1/jobs/{job_id}/events")
    thread.join(5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names == [
        "state",
        "status",
        "progress",
        "progress",
        "progress",
        "epoch",
        "status",
        "end",
    ]
    assert events[0][1]["status"] == "queued"
    assert [data["step"] for name, data in events if name == "progress"] == [1, 2, 3]
    assert events[-2][1]["status"] == "succeeded" and events[-1][1] == {"status": "succeeded"}


def test_late_client_gets_the_current_state_and_the_end(alice):
    job_id = alice.post("/v1/jobs", json=digits_spec()).json()["id"]
    alice.post(f"/v1/jobs/{job_id}/cancel")
    events = parse_sse(alice.get(f"/v1/jobs/{job_id}/events").text)
    assert [name for name, _ in events] == ["state", "end"]
    assert events[0][1]["status"] == "cancelled" and events[0][1]["id"] == job_id


def test_reconnecting_client_resumes_after_last_event_id(alice, redis_client):
    job_id = alice.post("/v1/jobs", json=digits_spec()).json()["id"]
    store = JobStore(redis_client)
    store.transition(job_id, "running")
    store.update(job_id, {"step": 1})
    seen = store.events(job_id)[-1][0]  # the step-1 event
    store.update(job_id, {"step": 2})
    store.transition(job_id, "failed", "NaN loss")
    response = alice.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": seen})
    events = parse_sse(response.text)
    assert [name for name, _ in events] == ["progress", "status", "end"]
    assert events[0][1]["step"] == 2 and events[1][1]["status_reason"] == "NaN loss"


def test_after_in_the_query_resumes_like_last_event_id_and_the_header_wins(alice, redis_client):
    job_id = alice.post("/v1/jobs", json=digits_spec()).json()["id"]
    store = JobStore(redis_client)
    store.transition(job_id, "running")
    first = store.events(job_id)[-1][0]  # the running status event
    store.update(job_id, {"step": 1})
    second = store.events(job_id)[-1][0]
    store.transition(job_id, "failed", "NaN loss")
    url = f"/v1/jobs/{job_id}/events?after={first}"

    by_query = parse_sse(alice.get(url).text)
    by_header = parse_sse(alice.get(url, headers={"Last-Event-ID": second}).text)

    assert [name for name, _ in by_query] == ["progress", "status", "end"]
    assert [name for name, _ in by_header] == ["status", "end"]


def test_a_malformed_after_is_422_naming_it(alice):
    job_id = alice.post("/v1/jobs", json=digits_spec()).json()["id"]
    response = alice.get(f"/v1/jobs/{job_id}/events?after=yesterday")
    too_big = alice.get(f"/v1/jobs/{job_id}/events?after={'1' * 21}")

    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "after"]
    assert too_big.status_code == 422 and too_big.json()["detail"].startswith("after:")


def test_a_malformed_last_event_id_is_422(alice):
    job_id = alice.post("/v1/jobs", json=digits_spec()).json()["id"]
    response = alice.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "yesterday"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "last-event-id"]
    too_big = alice.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "1" * 21})
    assert too_big.status_code == 422 and "Last-Event-ID" in too_big.json()["detail"]
