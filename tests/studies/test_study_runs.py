"""Studies end to end: real Redis, real workers, the real API; trials are ordinary jobs."""

from __future__ import annotations

import itertools

import pytest

from api.client import ApiError
from tests.studies.conftest import digits_study, trial_jobs, wait_study

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def most_at_once(jobs: list[dict]) -> int:
    """The most trial jobs unfinished at the same moment (from their created/finished times)."""
    moments = [(job["created_at"], 1) for job in jobs] + [(job["finished_at"], -1) for job in jobs]
    level = peak = 0
    for _, change in sorted(moments, key=lambda m: (m[0], m[1])):
        level += change
        peak = max(peak, level)
    return peak


def best_job_version(client, job: dict) -> int:
    return client.model(job["model_id"])["version"]


def test_a_study_runs_max_trials_two_at_a_time_and_names_the_best(alice, bob, workers):
    workers(concurrency=2)

    study = alice.create_study(digits_study(max_trials=5, max_parallel=2))
    done = wait_study(alice, study["id"])

    assert done["status"] == "succeeded", done["status_reason"]
    trials = done["trials"]
    assert sorted(t["trial"] for t in trials) == [0, 1, 2, 3, 4]
    assert {t["state"] for t in trials} == {"complete"}
    assert all(t["epochs"] == 3 for t in trials)
    jobs = trial_jobs(alice, study["id"])
    assert sorted(job["trial"] for job in jobs) == [0, 1, 2, 3, 4]  # one job per trial
    assert {job["id"] for job in jobs} == {t["job_id"] for t in trials}
    assert all(job["status"] == "succeeded" and job["model_id"] for job in jobs)
    assert most_at_once(jobs) == 2
    for trial in trials:
        job = next(j for j in jobs if j["id"] == trial["job_id"])
        assert trial["value"] == job["history"][-1]["val_accuracy"]
        assert job["spec"]["optimizer"]["lr"] == trial["params"]["optimizer.lr"]
        assert (
            job["spec"]["model"]["layers"][0]["units"] == trial["params"]["model.layers[0].units"]
        )
    best = max(trials, key=lambda t: (t["value"], -t["trial"]))
    assert done["best_trial"] == {k: best[k] for k in ("trial", "job_id", "params", "value")}
    assert done["epochs_total"] == 15
    # the trials' models are the versions of one registry name; "best" serves the best trial's
    best_job = next(j for j in jobs if j["id"] == best["job_id"])
    assert [n["name"] for n in alice.registry_names()["names"]] == ["digits-study"]
    assert alice.registry("digits-study")["aliases"] == {"best": best_job_version(alice, best_job)}
    assert alice.model("digits-study@best")["id"] == best_job["model_id"]
    # another tenant sees neither the study nor its trials
    assert bob.studies()["studies"] == [] and bob.jobs()["jobs"] == []
    with pytest.raises(ApiError) as hidden:
        bob.study(study["id"])
    assert hidden.value.status == 404


def test_the_grid_sampler_runs_every_point_of_the_grid_once(alice, workers):
    workers(concurrency=2)
    space = {
        "optimizer.lr": {"type": "float", "low": 0.01, "high": 0.03, "step": 0.01},
        "batch_size": {"type": "categorical", "choices": [32, 64]},
    }

    study = alice.create_study(digits_study(space=space, sampler="grid", max_trials=50))
    events = list(alice.study_events(study["id"]))  # until the study ends
    done = alice.study(study["id"])

    assert done["status"] == "succeeded", done["status_reason"]
    points = sorted(
        (t["params"]["optimizer.lr"], t["params"]["batch_size"]) for t in done["trials"]
    )
    assert points == sorted(itertools.product([0.01, 0.02, 0.03], [32, 64]))
    assert len(trial_jobs(alice, study["id"])) == 6
    names = [name for name, _ in events]
    assert names[0] == "state" and names[-2:] == ["status", "end"]
    assert events[-1][1]["status"] == "succeeded"
    completed = {
        data["trial"] for name, data in events if name == "trial" and data["state"] == "complete"
    }
    assert completed == set(range(6))  # every trial's end was an event
