"""The pruner stops hopeless trials: their jobs end cancelled, "pruned at epoch k"."""

from __future__ import annotations

import re

import pytest

from tests.studies.conftest import digits_study, trial_jobs, wait_study

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DIVERGING = 5.0  # adam at lr 5 leaves digits at chance (~0.1 val accuracy), with finite losses
EPOCHS = 24


def test_the_median_pruner_cancels_trials_whose_learning_rate_diverges(alice, workers):
    workers(concurrency=1)
    space = {
        "optimizer.lr": {"type": "categorical", "choices": [0.01, 0.02, DIVERGING]},
        "model.layers[0].units": {"type": "categorical", "choices": [16, 32]},
    }
    # 24 epochs of ~0.1 s: the coordinator's cancel has seconds to arrive after the epoch-2
    # verdict even on a loaded machine (with 8, a diverging trial once ran to the end first)
    base = digits_study()["base_spec"] | {"epochs": EPOCHS}
    # one trial at a time, in the grid's order for this seed: good trials complete first, so the
    # median at each epoch is a trained network's accuracy and chance is far below it
    study = alice.create_study(
        digits_study(
            base_spec=base,
            space=space,
            sampler="grid",
            pruner="median",
            max_parallel=1,
            max_trials=6,
            seed=3,
        )
    )
    done = wait_study(alice, study["id"], timeout=240)

    assert done["status"] == "succeeded", done["status_reason"]
    by_state = {}
    for trial in done["trials"]:
        by_state.setdefault(trial["state"], []).append(trial)
    pruned = by_state.get("pruned", [])
    assert pruned, f"nothing pruned: {done['trials']}"
    # one at a time: trial n starts after n trials ended; the median needs 2 completed ones
    late_diverging = [
        t for t in done["trials"] if t["params"]["optimizer.lr"] == DIVERGING and t["trial"] >= 2
    ]
    assert late_diverging and all(t["state"] == "pruned" for t in late_diverging)
    jobs = {job["id"]: job for job in trial_jobs(alice, study["id"])}
    for trial in pruned:
        job = jobs[trial["job_id"]]
        assert job["status"] == "cancelled"
        epoch = int(re.fullmatch(r"pruned at epoch (\d+)", job["status_reason"]).group(1))
        assert 2 <= epoch < EPOCHS  # the median pruner's warm-up is 2 epochs
        assert trial["epochs"] < EPOCHS
    assert all(t["value"] < 0.3 for t in late_diverging)  # chance level, reported before the cut
    assert done["best_trial"]["params"]["optimizer.lr"] < 1
