"""Delete, resume, logs and init_from through the API (jobs stay queued: no workers here)."""

from __future__ import annotations

import json

import pytest

from tests.api.models_fixture import store_digits_model
from worker.fence import Unfenced
from worker.job_logs import job_log, logs_key
from worker.jobs import JobStore, cancel_key, events_key
from worker.loss_curve import LossRecorder, loss_key
from worker.storage.checkpoints import checkpoint_keys, checkpoints_key, save_checkpoint

SPEC = {
    "name": "digits-mlp",
    "dataset": {"name": "digits"},
    "model": {"layers": [{"type": "dense", "units": 32, "activation": "relu"},
                         {"type": "dense", "units": 10}]},
    "epochs": 2,
}  # fmt: skip


def submit(client, **changes) -> dict:
    response = client.post("/v1/jobs", json=SPEC | changes)
    assert response.status_code == 202, response.text
    return response.json()


def finish(redis_client, job_id: str, model_id: str | None = None) -> None:
    store = JobStore(redis_client)
    store.transition(job_id, "running")
    store.transition(job_id, "succeeded", changes={"model_id": model_id})


def test_a_finished_job_is_deleted_with_its_traces_and_its_model_stays(alice, app, redis_client):
    job = submit(alice)
    assert alice.delete(f"/v1/jobs/{job['id']}").status_code == 409  # still queued
    model = store_digits_model(redis_client, "alice")
    finish(redis_client, job["id"], model["id"])
    leftover = Unfenced(redis_client)  # written as a finished job's last attempt left it
    meta = {"global_step": 1}
    saved = save_checkpoint(app.state.artifacts, job["id"], {}, {}, meta, fence=leftover)
    job_log(redis_client, job["id"], "hello", shard=0)
    curve = LossRecorder(leftover, job["id"], steps_total=10)
    curve.add(1, 0.5)
    curve.flush()
    assert alice.get(f"/v1/jobs/{job['id']}/metrics").json()["steps"]["step"] == [1]

    assert alice.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert alice.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert alice.get("/v1/jobs").json()["jobs"] == []
    for key in (checkpoints_key, events_key, logs_key, cancel_key, loss_key):
        assert not redis_client.exists(key(job["id"]))
    assert list(redis_client.scan_iter(match=f"*{job['id']}*")) == []  # nothing under its name
    assert checkpoint_keys(app.state.artifacts, job["id"]) == []
    assert list(app.state.artifacts.backend.list(saved["key"])) == []  # the object is gone too
    assert alice.get(f"/v1/models/{model['id']}").status_code == 200
    assert alice.delete(f"/v1/jobs/{job['id']}").status_code == 404


def test_delete_model_true_deletes_the_jobs_model_too(alice, redis_client):
    job = submit(alice)
    model = store_digits_model(redis_client, "alice")
    finish(redis_client, job["id"], model["id"])
    assert alice.delete(f"/v1/jobs/{job['id']}?delete_model=true").status_code == 204
    assert alice.get(f"/v1/models/{model['id']}").status_code == 404


def test_resume_requeues_a_cancelled_job_with_more_epochs(alice, app, redis_client):
    job = submit(alice)
    url = f"/v1/jobs/{job['id']}/resume"
    assert alice.post(url).status_code == 409  # queued: nothing to resume
    JobStore(redis_client).transition(job["id"], "running")
    alice.post(f"/v1/jobs/{job['id']}/cancel")
    JobStore(redis_client).transition(job["id"], "cancelled")
    no_checkpoint = alice.post(url)
    assert no_checkpoint.status_code == 409 and "no checkpoint" in no_checkpoint.json()["detail"]
    meta = {"global_step": 12, "epoch": 1}
    fence = Unfenced(redis_client)
    save_checkpoint(app.state.artifacts, job["id"], {}, {}, meta, fence=fence)
    assert alice.post(url, json={"epochs": 1}).status_code == 422  # fewer than the spec's 2

    resumed = alice.post(url, json={"epochs": 5})
    assert resumed.status_code == 202, resumed.text
    body = resumed.json()
    assert body["status"] == "queued" and body["resumes"] == 1 and body["epochs"] == 5
    assert "step 12" in body["status_reason"] and app.state.started == [job["id"]]
    assert not redis_client.exists(cancel_key(job["id"]))
    assert alice.post(url).status_code == 409  # queued again


def test_logs_page_with_a_cursor_and_follow_streams_until_the_end(alice, redis_client):
    job = submit(alice)
    for i in range(5):
        job_log(redis_client, job["id"], f"line {i}", shard=i % 2, level="warning")
    first = alice.get(f"/v1/jobs/{job['id']}/logs?limit=3").json()
    rest = alice.get(f"/v1/jobs/{job['id']}/logs?limit=3&cursor={first['next_cursor']}").json()
    lines = first["lines"] + rest["lines"]
    assert [line["message"] for line in lines] == [f"line {i}" for i in range(5)]
    assert [line["shard"] for line in lines] == [0, 1, 0, 1, 0] and rest["next_cursor"] is None
    assert lines[0]["level"] == "warning" and lines[0]["time"].endswith("Z")
    assert alice.get(f"/v1/jobs/{job['id']}/logs?cursor=x").status_code == 422

    finish(redis_client, job["id"])
    with alice.stream("GET", f"/v1/jobs/{job['id']}/logs?follow=true") as response:
        text = "".join(response.iter_text())
    events = [block for block in text.split("\n\n") if block.strip()]
    logged = [json.loads(b.split("data: ")[1]) for b in events if "event: log" in b]
    assert [line["message"] for line in logged] == [f"line {i}" for i in range(5)]
    assert "event: end" in events[-1] and "succeeded" in events[-1]


def test_init_from_is_pinned_to_an_id_and_mismatches_name_the_layer(alice, redis_client):
    model = store_digits_model(redis_client, "alice")  # 64-32-10
    job = submit(alice, init_from={"model": "digits-mlp/versions/1"})
    stored = JobStore(redis_client).get(job["id"])["spec"]["init_from"]
    assert stored == {"model": "digits-mlp/versions/1", "model_id": model["id"]}

    wider = {"layers": [{"type": "dense", "units": 32, "activation": "relu"},
                        {"type": "dense", "units": 16, "activation": "relu"},
                        {"type": "dense", "units": 10}]}  # fmt: skip
    response = alice.post(
        "/v1/jobs", json=SPEC | {"model": wider, "init_from": {"model": model["id"]}}
    )
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "init_from", "model"]
    assert "layer 1 (dense) has shapes" in error["msg"]


@pytest.mark.parametrize(
    ("reference", "message"),
    [("digits-mlp@production", "not found"), ("no such thing", "NAME@ALIAS")],
)
def test_init_from_an_unknown_or_malformed_reference_is_422(
    alice, redis_client, reference, message
):
    store_digits_model(redis_client, "alice")
    response = alice.post("/v1/jobs", json=SPEC | {"init_from": {"model": reference}})
    assert response.status_code == 422 and message in str(response.json()["detail"])


def test_lifecycle_routes_keep_tenants_apart(alice, bob, redis_client):
    job = submit(alice)
    model = store_digits_model(redis_client, "alice")
    finish(redis_client, job["id"], model["id"])
    assert bob.delete(f"/v1/jobs/{job['id']}").status_code == 404
    assert bob.post(f"/v1/jobs/{job['id']}/resume").status_code == 404
    assert bob.get(f"/v1/jobs/{job['id']}/logs").status_code == 404
    assert bob.get(f"/v1/jobs/{job['id']}/logs?follow=true").status_code == 404
    refused = bob.post("/v1/jobs", json=SPEC | {"init_from": {"model": model["id"]}})
    assert refused.status_code == 422 and "not found" in str(refused.json()["detail"])
    assert alice.get(f"/v1/jobs/{job['id']}").status_code == 200
