"""PATCH changes the budget of a running study; cancel stops it and its trials."""

from __future__ import annotations

import pytest

from tests.harness import wait_until
from tests.studies.conftest import digits_study, trial_jobs, wait_study
from tests.studies.test_study_runs import most_at_once

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def long_trials(**overrides) -> dict:
    """Trials of ~20 epochs: long enough to act on a study while its first trial runs."""
    base = digits_study()["base_spec"] | {"epochs": 20}
    return digits_study(base_spec=base, **overrides)


def first_trial_running(client, study_id: str) -> dict:
    return wait_until(
        lambda: (
            (s := client.study(study_id))["trials"] and s["trials"][0]["state"] == "running" and s
        ),
        60,
        "the first trial to run",
    )


def test_patch_lowers_max_trials_and_raises_max_parallel_of_a_running_study(alice, workers):
    workers(concurrency=2)
    study = alice.create_study(long_trials(max_trials=6, max_parallel=1))
    first_trial_running(alice, study["id"])

    patched = alice.patch_study(study["id"], max_trials=2, max_parallel=2)
    done = wait_study(alice, study["id"])

    assert patched["max_trials"] == 2 and patched["max_parallel"] == 2
    assert done["status"] == "succeeded", done["status_reason"]
    assert [t["trial"] for t in done["trials"]] == [0, 1]
    assert most_at_once(trial_jobs(alice, study["id"])) == 2  # the second joined the first


def test_cancel_stops_the_running_trials_and_ends_the_study_cancelled(alice, workers):
    workers(concurrency=2)
    study = alice.create_study(long_trials(max_trials=6, max_parallel=2))
    first_trial_running(alice, study["id"])

    alice.cancel_study(study["id"])
    done = wait_study(alice, study["id"])

    assert done["status"] == "cancelled"
    assert len(done["trials"]) < 6
    jobs = trial_jobs(alice, study["id"])
    assert jobs and all(job["status"] in ("cancelled", "succeeded") for job in jobs)
    assert any(job["status_reason"] == "study cancelled" for job in jobs)
    assert all(t["state"] != "running" for t in done["trials"])
