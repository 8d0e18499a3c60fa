"""Hyperparameter studies: search spaces over job specs, trials as ordinary jobs, Optuna inside.

``space`` (paths, corners, grids; no Optuna) is shared with the API; ``store`` keeps the study
records in Redis; ``coordinator`` and ``driver`` run in the worker's main process.
"""
