"""Submit-time capacity: more shards than the live workers can ever give at once are refused."""

from __future__ import annotations

import pytest

from tests.api.specs import digits_spec
from tests.harness import wait_until
from tests.studies.conftest import digits_study
from worker.worker_registry import training_slots

pytestmark = pytest.mark.integration


def test_more_shards_than_the_live_workers_have_slots_is_a_422_with_the_numbers(
    alice, settings, redis_client, start_worker
):
    start_worker(concurrency=2)
    wait_until(lambda: training_slots(redis_client, settings)[1], 30, "the worker's heartbeat")

    response = alice.post("/v1/jobs", json=digits_spec(shards=64, batch_size=64))

    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "shards"]
    assert error["msg"] == (
        "64 shards need 64 worker slots at once, but the 1 live training worker(s) have 2 in all;"
        " ask for at most 2"
    )
    assert alice.get("/v1/jobs").json()["jobs"] == []  # nothing was queued


def test_a_job_that_fits_the_live_workers_is_accepted(alice, settings, redis_client, start_worker):
    start_worker(concurrency=2)
    wait_until(lambda: training_slots(redis_client, settings)[1], 30, "the worker's heartbeat")

    assert alice.post("/v1/jobs", json=digits_spec(shards=2)).status_code == 202


def test_a_study_whose_trials_could_never_start_is_a_422_naming_the_path(
    alice, settings, redis_client, start_worker
):
    # POST /v1/jobs refused 64 shards on 2 slots, but a study's trials were not checked: trials
    # of 36 and 46 shards waited for workers forever, holding the study's parallel slots
    start_worker(concurrency=2)
    wait_until(lambda: training_slots(redis_client, settings)[1], 30, "the worker's heartbeat")
    space = {"shards": {"type": "int", "low": 1, "high": 8}}

    response = alice.post("/v1/studies", json=digits_study(space=space))
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "space", "shards"]
    assert "at shards=8" in error["msg"] and "have 2 in all; ask for at most 2" in error["msg"]

    base = digits_study()["base_spec"] | {"shards": 3}
    response = alice.post("/v1/studies", json=digits_study(base_spec=base))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "base_spec", "shards"]
    assert alice.get("/v1/studies").json()["studies"] == []  # nothing was stored
    space = {"shards": {"type": "int", "low": 1, "high": 2}}
    assert alice.post("/v1/studies", json=digits_study(space=space)).status_code == 202
