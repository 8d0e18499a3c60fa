"""The coordinator alone (real Redis, no workers): idempotent after a crash, within limits."""

from __future__ import annotations

import pytest

from api.schemas.spec import JobSpec
from tests.studies.conftest import digits_study
from worker.config import Settings
from worker.jobs import JobStore
from worker.studies.coordinator import Coordinator
from worker.studies.store import StudyStore

REQUEST_FIELDS = (
    "name",
    "space",
    "objective",
    "max_trials",
    "max_parallel",
    "max_failed",
    "sampler",
    "pruner",
    "seed",
)


def stored_study(redis_client, tenant: str = "acme", **overrides) -> dict:
    """A study record as the API stores it (base spec with defaults filled in)."""
    study = digits_study(**overrides)
    request = {key: study[key] for key in REQUEST_FIELDS}
    request["base_spec"] = JobSpec.model_validate(study["base_spec"]).to_stored()
    return StudyStore(redis_client).create(tenant, request)


class Submitter:
    """Creates job records like ``submit_job`` (no Celery); can die on a chosen call."""

    def __init__(self, die_on_call: int | None = None):
        self.calls, self.die_on_call = [], die_on_call

    def __call__(self, redis, spec, tenant, max_active=None, job_id=None, fields=None):
        if len(self.calls) == self.die_on_call:
            self.die_on_call = None
            raise ConnectionError("the coordinator's process died here")
        record = JobStore(redis).create(spec, tenant, max_active, job_id=job_id, fields=fields)
        self.calls.append(job_id)
        return record


def test_a_coordinator_that_died_mid_submit_is_replaced_and_no_trial_runs_twice(
    redis_client, celery_app
):
    study = stored_study(redis_client, max_parallel=3)
    settings = Settings(redis_url="redis://unused", max_active_jobs_per_tenant=16)
    dying = Submitter(die_on_call=1)  # Optuna asked for trial 1; its job was never created

    with pytest.raises(ConnectionError):
        Coordinator(redis_client, study["id"], settings, submit=dying).tick()
    successor = Submitter()
    replacement = Coordinator(redis_client, study["id"], settings, submit=successor)
    replacement.tick()
    replacement.tick()

    jobs_of = StudyStore(redis_client).trial_jobs(study["id"])
    assert sorted(jobs_of) == [0, 1, 2]  # trial 1 was submitted by the successor, once
    assert sorted(dying.calls + successor.calls) == sorted(jobs_of.values())
    records = [JobStore(redis_client).get(job_id) for job_id in jobs_of.values()]
    assert sorted(r["trial"] for r in records) == [0, 1, 2]
    assert {r["study_id"] for r in records} == {study["id"]}


def test_trials_count_against_the_tenants_active_job_limit(redis_client, celery_app):
    jobs = JobStore(redis_client)
    for _ in range(2):
        jobs.create({"name": "other"}, "acme")  # two active jobs of the study's tenant
    jobs.create({"name": "not mine"}, "someone-else")
    study = stored_study(redis_client, max_parallel=3)
    settings = Settings(redis_url="redis://unused", max_active_jobs_per_tenant=3)
    submit = Submitter()

    Coordinator(redis_client, study["id"], settings, submit=submit).tick()

    assert len(submit.calls) == 1  # 2 active + 1 trial = the limit of 3
    record = StudyStore(redis_client).get(study["id"])
    assert [t["state"] for t in record["trials"]] == ["running"]


def test_a_prune_written_down_before_a_crash_is_carried_out_by_the_next_coordinator(
    redis_client, celery_app
):
    study = stored_study(redis_client, max_parallel=1, max_trials=1, pruner="median")
    settings = Settings(redis_url="redis://unused")
    Coordinator(redis_client, study["id"], settings, submit=Submitter()).tick()
    store = StudyStore(redis_client)
    store.mark_pruned(study["id"], 0, 2)  # ...and the coordinator died before cancelling

    successor = Coordinator(redis_client, study["id"], settings, submit=Submitter())
    successor.tick()
    successor.tick()

    job = JobStore(redis_client).get(store.trial_jobs(study["id"])[0])
    assert job["status"] == "cancelled" and job["status_reason"] == "pruned at epoch 2"
    record = store.get(study["id"])
    assert [t["state"] for t in record["trials"]] == ["pruned"]
    assert record["status"] == "failed" and record["status_reason"] == "no trial completed"


def test_a_trial_whose_job_succeeded_before_reading_its_prune_counts_as_complete(
    redis_client, celery_app
):
    study = stored_study(redis_client, max_parallel=1, max_trials=1, pruner="median")
    settings = Settings(redis_url="redis://unused")
    Coordinator(redis_client, study["id"], settings, submit=Submitter()).tick()
    store, jobs = StudyStore(redis_client), JobStore(redis_client)
    job_id = store.trial_jobs(study["id"])[0]
    jobs.transition(job_id, "running")
    store.mark_pruned(study["id"], 0, 1)  # the pruner spoke, but the fast job ended first
    history = [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.75}]
    jobs.update(job_id, {"history": history}, status="succeeded")

    coordinator = Coordinator(redis_client, study["id"], settings, submit=Submitter())
    coordinator.tick()
    coordinator.tick()

    record = store.get(study["id"])
    assert [(t["state"], t["value"]) for t in record["trials"]] == [("complete", 0.75)]
    assert record["best_trial"]["value"] == 0.75 and store.pruned(study["id"]) == {}


def test_epochs_that_arrive_together_are_judged_one_by_one_as_optuna_expects(
    redis_client, celery_app
):
    base = digits_study()["base_spec"] | {"epochs": 5}
    study = stored_study(
        redis_client, base_spec=base, max_parallel=1, max_trials=3, pruner="median"
    )
    settings = Settings(redis_url="redis://unused")
    store, jobs = StudyStore(redis_client), JobStore(redis_client)
    coordinator = Coordinator(redis_client, study["id"], settings, submit=Submitter())
    good = [{"epoch": e, "val_accuracy": 0.5 + 0.1 * e} for e in range(1, 6)]
    for trial in (0, 1):  # two complete trials: the median pruner's startup
        coordinator.tick()
        finished = store.trial_jobs(study["id"])[trial]
        jobs.transition(finished, "running")
        jobs.update(finished, {"history": good}, status="succeeded")
    coordinator.tick()
    job_id = store.trial_jobs(study["id"])[2]
    jobs.transition(job_id, "running")
    # three epochs at chance reach the coordinator in one pass (a slow pass, a takeover)
    chance = [{"epoch": e, "val_accuracy": 0.1} for e in range(1, 4)]
    jobs.update(job_id, {"history": chance})

    coordinator.tick()

    # epoch 2 is the first the pruner may judge (2 warm-up epochs): the cut is there, not at 3
    job = jobs.get(job_id)
    assert job["status_reason"] == "pruned at epoch 2"
    assert store.pruned(study["id"]) == {2: 2}
