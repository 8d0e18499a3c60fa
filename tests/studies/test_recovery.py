"""A study survives SIGKILLed trials and a restart of the API and of every worker."""

from __future__ import annotations

import os
import signal

import pytest

from api.client import GradqClient
from tests.api.live import LiveApi
from tests.harness import wait_until
from tests.studies.conftest import API_ENV, KEY_A, digits_study, trial_jobs, wait_study

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def long_trials(**overrides) -> dict:
    base = digits_study()["base_spec"] | {"epochs": 12}
    return digits_study(base_spec=base, **overrides)


def wait_epoch(client, study_id: str, trial: int, epochs: int) -> dict:
    def reached():
        rows = client.study(study_id)["trials"]
        return len(rows) > trial and rows[trial]["epochs"] >= epochs and rows[trial]

    return wait_until(reached, 90, f"trial {trial} to train {epochs} epochs")


def test_a_trial_whose_worker_is_sigkilled_resumes_and_counts_once(alice, workers):
    worker = workers(concurrency=1)
    study = alice.create_study(long_trials(max_trials=2, max_parallel=1))
    row = wait_epoch(alice, study["id"], 0, 2)

    os.kill(worker.child_pids()[0], signal.SIGKILL)
    done = wait_study(alice, study["id"], timeout=180)

    assert done["status"] == "succeeded", done["status_reason"]
    assert [t["trial"] for t in done["trials"]] == [0, 1]
    assert all(t["state"] == "complete" and t["epochs"] == 12 for t in done["trials"])
    jobs = {job["trial"]: job for job in trial_jobs(alice, study["id"])}
    assert len(jobs) == 2 and jobs[0]["id"] == row["job_id"]
    assert jobs[0]["restarts"] == 1  # the same job resumed from its checkpoint
    assert [h["epoch"] for h in jobs[0]["history"]] == list(range(1, 13))


def test_a_study_continues_after_the_api_and_every_worker_restart(
    redis_url, live_api, alice, workers, tmp_path
):
    first = workers(concurrency=2)
    study = alice.create_study(long_trials(max_trials=5, max_parallel=2))
    wait_epoch(alice, study["id"], 0, 2)

    live_api.stop()
    os.killpg(first.process.pid, signal.SIGKILL)  # main process (the coordinator) and children
    first.process.wait(10)
    api = LiveApi(redis_url, tmp_path / "api2.log", **API_ENV)
    workers(concurrency=2)
    try:
        with GradqClient(api.url, KEY_A) as client:
            done = wait_study(client, study["id"], timeout=240)
            jobs = trial_jobs(client, study["id"])
    finally:
        api.stop()

    assert done["status"] == "succeeded", done["status_reason"]
    assert [t["trial"] for t in done["trials"]] == [0, 1, 2, 3, 4]
    assert all(t["state"] == "complete" for t in done["trials"])
    assert sorted(job["trial"] for job in jobs) == [0, 1, 2, 3, 4]  # none submitted twice
    assert sum(job["restarts"] for job in jobs) >= 1  # trials that were running resumed
