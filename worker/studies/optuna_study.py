"""The Optuna side of a study: distributions, sampler, pruner, and the study in its journal.

Samplers and pruners are Optuna's, configured from the study record:
- ``random`` / ``tpe`` are seeded with ``seed`` plus the number of trials already created, so a
  restarted coordinator does not replay the first trials' draws (duplicates) from the same seed;
- ``tpe`` is multivariate (one joint density over all paths: Falkner et al. 2018, BOHB, and
  Optuna's TPESampler docs report it beats independent TPE) with the constant liar (running
  trials count as bad ones, so ``max_parallel`` trials asked together are not drawn from the same
  density; Optuna recommends it for distributed optimisation). Optuna 5 defaults to both, 4.x to
  neither, and ``optuna>=4.0`` is what gradq asks for, so both are set here. Its first 10 trials
  (Optuna's ``n_startup_trials``) are random draws, the same ones ``random`` makes with that seed.
  With ``hyperband`` they count over the whole study, not per bracket as the HyperbandPruner docs
  still say: TPE reads ``study._get_trials``, which the bracket study does not filter (Optuna 5.0);
- ``grid`` gives trial n the n-th point of the grid (Optuna shuffles the grid with ``seed``);
- ``median`` prunes a trial whose objective at epoch k is worse than the median of completed
  trials at epoch k, once 2 trials completed, from epoch 2 on (epoch 1 is mostly initialisation);
- ``hyperband`` uses epochs as the resource, from 1 to the spec's epochs (``max_resource`` given,
  not Optuna's "auto", which would prune nothing until a trial completes), reduction factor 3
  (Li et al. 2018, Hyperband, JMLR 18(185): eta = 3; 9 epochs give 3 brackets with rungs
  1-3-9, 3-9 and 9), ``bootstrap_count`` 0 (Optuna's default: no rung waits for competitors).
"""

from __future__ import annotations

import optuna
from optuna.storages import JournalStorage

from worker.studies.journal import RedisListJournal
from worker.studies.space import grid_count, grid_value, grid_values
from worker.studies.store import study_key

MEDIAN_STARTUP_TRIALS = 2
MEDIAN_WARMUP_EPOCHS = 2
HYPERBAND_REDUCTION = 3

optuna.logging.set_verbosity(optuna.logging.WARNING)  # trial chatter stays out of worker logs


def max_epochs(record: dict) -> int:
    """The most epochs a trial can run (the ``epochs`` dimension's top if it is searched)."""
    dimension = record["space"].get("epochs")
    if dimension is None:
        return int(record["base_spec"]["epochs"])
    count = grid_count(dimension)
    return int(grid_value(dimension, count - 1) if count else dimension["high"])


def make_sampler(record: dict, trials_so_far: int) -> optuna.samplers.BaseSampler:
    seed = int(record["seed"])
    if record["sampler"] == "grid":
        grid = {path: grid_values(d) for path, d in record["space"].items()}
        return optuna.samplers.GridSampler(grid, seed=seed)
    seed += trials_so_far
    if record["sampler"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


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
    try:
        trials = len(storage.get_all_trials(storage.get_study_id_from_name(record["id"])))
    except KeyError:  # the first time: Optuna's study does not exist yet
        trials = 0
    return optuna.create_study(
        study_name=record["id"],
        storage=storage,
        sampler=make_sampler(record, trials),
        pruner=make_pruner(record),
        direction=record["objective"]["direction"],
        load_if_exists=True,
    )


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
