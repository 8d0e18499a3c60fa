"""TPE's random start follows the study's budget, and hyperband's brackets follow its seed
(Optuna in memory or on a real Redis journal)."""

from __future__ import annotations

import math

import optuna
import pytest

from worker.studies.optuna_study import make_sampler, open_study, startup_trials

SPACE = {
    "optimizer.lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
    "model.layers[1].units": {"type": "int", "low": 32, "high": 512, "step": 32},
    "batch_size": {"type": "categorical", "choices": [64, 128, 256]},
}


def record(**overrides) -> dict:
    """The fields of a study record the sampler, pruner and journal read."""
    study = {
        "id": "study_0123456789abcdef",
        "space": SPACE,
        "base_spec": {"epochs": 9},
        "max_trials": 24,
        "sampler": "tpe",
        "pruner": "hyperband",
        "seed": 0,
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
    }
    return study | overrides


@pytest.mark.parametrize(
    ("max_trials", "paths", "expected"),
    [(24, 3, 6), (12, 3, 4), (4, 3, 4), (40, 3, 10), (1000, 3, 10), (24, 12, 10)],
)
def test_tpe_startup_is_a_quarter_of_the_budget_within_d_plus_1_and_optunas_10(
    max_trials, paths, expected
):
    space = {f"p{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(paths)}
    assert startup_trials(record(max_trials=max_trials, space=space)) == expected


def params_of(sampler: optuna.samplers.BaseSampler, trials: int) -> list[dict]:
    """The points ``sampler`` asks for, each trial told a value before the next is asked."""
    study = optuna.create_study(sampler=sampler, direction="maximize")
    points = []
    for n in range(trials):
        trial = study.ask()
        point = {
            "lr": trial.suggest_float("lr", 1e-4, 3e-2, log=True),
            "units": trial.suggest_int("units", 32, 512, step=32),
        }
        study.tell(trial, -abs(math.log10(point["lr"]) + 2.5) + n * 1e-6)
        points.append(point)
    return points


def test_tpe_draws_at_random_for_its_startup_trials_then_models_the_space():
    study = record(max_trials=12, space={"lr": {}, "units": {}})  # startup: max(3, 3) = 3
    assert startup_trials(study) == 3
    tpe = params_of(make_sampler(study, trials_so_far=0), 6)
    random = params_of(make_sampler(study | {"sampler": "random"}, trials_so_far=0), 6)

    assert tpe[:3] == random[:3]
    assert tpe[3:] != random[3:]


def brackets(redis_client, study: dict, trials: int) -> list[int]:
    """The hyperband bracket Optuna gives each of the study's first ``trials`` trials."""
    optuna_study = open_study(redis_client, study)
    pruner = optuna_study.pruner
    pruner._try_initialization(optuna_study)  # Optuna sizes its brackets on the first prune call
    return [pruner._get_bracket_id(optuna_study, optuna_study.ask()) for _ in range(trials)]


def test_two_studies_with_the_same_seed_get_the_same_brackets(redis_client):
    first = brackets(redis_client, record(id="study_00000000000000aa"), 24)
    again = brackets(redis_client, record(id="study_00000000000000bb"), 24)
    other = brackets(redis_client, record(id="study_00000000000000cc", seed=1), 24)

    assert first == again and first != other
    assert set(first) == {0, 1, 2}  # 9 epochs, eta 3: three brackets


def test_a_study_from_before_the_seed_name_keeps_its_journal(redis_client):
    study = record(id="study_00000000000000dd")
    journal = open_study(redis_client, study)
    # as the previous rule named it: the gradq study id, in the same journal
    optuna.create_study(study_name=study["id"], storage=journal._storage, direction="maximize")

    assert open_study(redis_client, study).study_name == study["id"]
    assert open_study(redis_client, record(id="study_00000000000000ee")).study_name == "seed-0"
