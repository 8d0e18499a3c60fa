"""The study's trials table and best trial, as ``GET /v1/studies/{id}`` shows them."""

from __future__ import annotations

import math

from optuna.trial import FrozenTrial, TrialState

STATES = {
    TrialState.RUNNING: "running",
    TrialState.WAITING: "running",
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}
BEST_FIELDS = ("trial", "job_id", "params", "value")


def trial_row(trial: FrozenTrial, job_id: str | None, job: dict | None) -> dict:
    """``{"trial", "job_id", "params", "state", "value", "epochs"}``: ``value`` is the result of
    a complete trial, the last reported epoch's value of a pruned or running one."""
    state = STATES[trial.state]
    value = trial.value if state in ("complete", "pruned") else None
    if state == "running" and trial.intermediate_values:
        value = trial.intermediate_values[max(trial.intermediate_values)]
    if value is not None and not math.isfinite(value):
        value = None  # JSON has no NaN
    return {
        "trial": trial.number,
        "job_id": job_id,
        "params": dict(trial.params),
        "state": state,
        "value": value,
        "epochs": len((job or {}).get("history") or []),
    }


def summarize(
    trials: list[FrozenTrial], jobs_of: dict[int, str], jobs: dict[str, dict], direction: str
) -> dict:
    """``trials``, ``best_trial`` (the best complete one for ``direction``; the earliest of
    equals), ``counts`` by state and ``epochs_total`` of a study."""
    rows = [trial_row(t, jobs_of.get(t.number), jobs.get(jobs_of.get(t.number))) for t in trials]
    counts = {state: 0 for state in ("running", "complete", "pruned", "failed")}
    for row in rows:
        counts[row["state"]] += 1
    sign = 1.0 if direction == "minimize" else -1.0
    complete = [row for row in rows if row["state"] == "complete" and row["value"] is not None]
    best = min(complete, key=lambda row: (sign * row["value"], row["trial"]), default=None)
    return {
        "trials": rows,
        "best_trial": None if best is None else {k: best[k] for k in BEST_FIELDS},
        "counts": counts,
        "epochs_total": sum(row["epochs"] for row in rows),
    }
