"""The Optuna side of a study: distributions, sampler, pruner, and the study in its journal.

Samplers and pruners are Optuna's, configured from the study record:
- ``random`` / ``tpe`` are seeded with ``seed`` plus the number of trials already created, so a
  restarted coordinator does not replay the first trials' draws (duplicates) from the same seed;
- ``tpe`` is multivariate (one joint density over all paths: Falkner et al. 2018, BOHB, and
  Optuna's TPESampler docs report it beats independent TPE) with the constant liar (running
  trials count as bad ones, so ``max_parallel`` trials asked together are not drawn from the same
  density; Optuna recommends it for distributed optimisation). Optuna 5 defaults to both, 4.x to
  neither, and ``optuna>=4.0`` is what gradq asks for, so both are set here. Its first
  ``startup_trials`` trials are random draws (the same ones ``random`` makes with that seed):
  Optuna's fixed 10 would be 42 % of a 24-trial study, so the count follows the budget as
  SMAC3's initial design does (at most a quarter of the trials, ``max_ratio`` 0.25), never fewer
  than BOHB's d + 1 (Falkner et al. 2018: the fewest points that make a d-dimensional model) nor
  more than Optuna's 10. With ``hyperband`` they count over the whole study, not per bracket as
  the HyperbandPruner docs still say: TPE reads ``study._get_trials``, which the bracket study
  does not filter (Optuna 5.0);
- ``grid`` gives trial n the n-th point of the grid (Optuna shuffles the grid with ``seed``);
- ``median`` prunes a trial whose objective at epoch k is worse than the median of completed
  trials at epoch k, once 2 trials completed, from epoch 2 on (epoch 1 is mostly initialisation);
- ``hyperband`` uses epochs as the resource, from 1 to the spec's epochs (``max_resource`` given,
  not Optuna's "auto", which would prune nothing until a trial completes), reduction factor 3
  (Li et al. 2018, Hyperband, JMLR 18(185): eta = 3; 9 epochs give 3 brackets with rungs
  1-3-9, 3-9 and 9), ``bootstrap_count`` 0 (Optuna's default: no rung waits for competitors).
  Optuna puts trial n in a bracket by a hash of (study name, n); the Optuna study inside each
  gradq study's own journal is named after the study's ``seed``, so the same seed gives the same
  brackets (named after gradq's random study id before, no two runs had the same brackets).
"""

from __future__ import annotations

import math

import optuna
from optuna.storages import JournalStorage

from worker.studies.journal import RedisListJournal
from worker.studies.space import grid_count, grid_value, grid_values
from worker.studies.store import study_key

MEDIAN_STARTUP_TRIALS = 2
MEDIAN_WARMUP_EPOCHS = 2
HYPERBAND_REDUCTION = 3
TPE_STARTUP_MAX = 10  # Optuna's default n_startup_trials
TPE_STARTUP_RATIO = 0.25  # SMAC3's max_ratio: the initial design takes at most this share

optuna.logging.set_verbosity(optuna.logging.WARNING)  # trial chatter stays out of worker logs


def max_epochs(record: dict) -> int:
    """The most epochs a trial can run (the ``epochs`` dimension's top if it is searched)."""
    dimension = record["space"].get("epochs")
    if dimension is None:
        return int(record["base_spec"]["epochs"])
    count = grid_count(dimension)
    return int(grid_value(dimension, count - 1) if count else dimension["high"])


def startup_trials(record: dict) -> int:
    """Random trials before TPE models the space: a quarter of ``max_trials``, at least one more
    than the space's dimensions, at most Optuna's 10 (24 trials over 3 paths: 6)."""
    by_budget = math.ceil(TPE_STARTUP_RATIO * record["max_trials"])
    return min(TPE_STARTUP_MAX, max(len(record["space"]) + 1, by_budget))


def make_sampler(record: dict, trials_so_far: int) -> optuna.samplers.BaseSampler:
    seed = int(record["seed"])
    if record["sampler"] == "grid":
        grid = {path: grid_values(d) for path, d in record["space"].items()}
        return optuna.samplers.GridSampler(grid, seed=seed)
    seed += trials_so_far
    if record["sampler"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(
        n_startup_trials=startup_trials(record), seed=seed, multivariate=True, constant_liar=True
    )


def make_pruner(record: dict) -> optuna.pruners.BasePruner:
    if record["pruner"] == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=MEDIAN_WARMUP_EPOCHS
        )
    if record["pruner"] == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max_epochs(record), reduction_factor=HYPERBAND_REDUCTION
        )
    return optuna.pruners.NopPruner()


def open_study(redis, record: dict) -> optuna.Study:
    """The study's Optuna ``Study`` on its Redis journal (created on first use)."""
    storage = JournalStorage(RedisListJournal(redis, study_key(record["id"], "journal")))
    name, trials = optuna_study_name(storage, record), 0
    try:
        trials = len(storage.get_all_trials(storage.get_study_id_from_name(name)))
    except KeyError:  # the first time: Optuna's study does not exist yet
        pass
    return optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(record, trials),
        pruner=make_pruner(record),
        direction=record["objective"]["direction"],
        load_if_exists=True,
    )


def optuna_study_name(storage: JournalStorage, record: dict) -> str:
    """``seed-<seed>`` (the journal holds this one study, so the name only has to be stable), or
    the gradq study id a study created before that rule already uses in its journal."""
    try:
        storage.get_study_id_from_name(record["id"])
        return record["id"]
    except KeyError:
        return f"seed-{int(record['seed'])}"


def suggest_point(trial: optuna.Trial, space: dict) -> dict:
    """The trial's value of every path; suggesting again returns the values it already has
    (so a trial whose coordinator died half-way through ``ask`` is completed, not redrawn)."""
    point = {}
    for path, d in space.items():
        if d["type"] == "categorical":
            point[path] = trial.suggest_categorical(path, d["choices"])
        elif d["type"] == "int":
            step, log = d.get("step") or 1, bool(d.get("log"))
            point[path] = trial.suggest_int(path, d["low"], d["high"], step=step, log=log)
        else:
            point[path] = trial.suggest_float(
                path, d["low"], d["high"], step=d.get("step"), log=bool(d.get("log"))
            )
    return point
