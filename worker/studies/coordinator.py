"""One study's coordinator: Optuna's ask-and-tell loop over ordinary gradq jobs.

Each ``tick`` derives everything from what is stored (the Optuna journal, the study's trial ->
job hash, the job records), so a coordinator that dies anywhere can be replaced by another one:
- a trial gets its job id *before* its job is created (``reserve_job_id``): no trial is ever
  submitted twice, and one Optuna asked for but never submitted is submitted on the next tick;
- epochs are reported once (Optuna keeps the reported ones), ``tell`` skips finished trials;
- a prune is written down before its job is cancelled, and cancelled again after a restart.
"""

from __future__ import annotations

import json
import math

import optuna
from optuna.trial import TrialState

from worker.admission import ActiveJobLimitError, DatasetGoneError
from worker.jobs import TERMINAL, JobFinishedError, JobStore, job_key
from worker.studies.optuna_study import open_study, suggest_point
from worker.studies.space import apply_point, grid_size
from worker.studies.store import FINAL, StudyStore
from worker.studies.summary import summarize
from worker.submit import submit_job

EPOCH_METRICS = ("val_loss", "val_accuracy", "train_loss")


class Coordinator:
    """Drives study ``study_id``; ``tick()`` is called by the one thread holding its lease."""

    def __init__(self, redis, study_id: str, settings, submit=submit_job):
        self.redis, self.study_id, self.settings, self.submit = redis, study_id, settings, submit
        self.studies, self.jobs = StudyStore(redis), JobStore(redis)
        self.study: optuna.Study | None = None
        self.live: dict[int, optuna.Trial] = {}  # Trial handles of running trials, by number
        self.written: dict | None = None  # the summary last written to the record
        self.judged: dict[int, int] = {}  # trial number -> last epoch the pruner judged

    def tick(self) -> bool:
        """One pass over the study; False once it is final (the caller stops)."""
        record = self.studies.get(self.study_id)
        if record is None or record["status"] in FINAL:
            return False
        if self.study is None:
            self.study = open_study(self.redis, record)
            self._relaunch_queued(record)
        frozen = self.study.get_trials(deepcopy=False)
        jobs_of = self.studies.trial_jobs(self.study_id)
        pruned = self.studies.pruned(self.study_id)
        records = self._job_records(jobs_of)
        stopping = self._stop_reason(record, frozen)
        for trial in frozen:
            if trial.state != TrialState.RUNNING:
                continue
            job = records.get(jobs_of.get(trial.number))
            if job is None:
                if stopping:
                    self._tell_failed(trial.number, "cancelled", "never started: " + stopping)
                else:
                    self._submit(record, trial.number)
                continue
            active = job["status"] in ("queued", "running")
            if trial.number in pruned and active:  # the last coordinator died before cancelling
                self._cancel(job["id"], f"pruned at epoch {pruned[trial.number]}")
            elif stopping and active:
                self._cancel(job["id"], stopping)
            elif not stopping:
                self._report(record, trial, job, pruned)
            if job["status"] in TERMINAL:
                self._tell(record, trial.number, job, pruned)
        if not stopping:
            self._ask_more(record)
        return self._write_summary(record, stopping)

    def running_jobs(self) -> list[str]:
        """Job ids of the trials running at the last pass (whose events are worth waiting for)."""
        rows = (self.written or {}).get("trials", [])
        return [row["job_id"] for row in rows if row["state"] == "running" and row["job_id"]]

    # trials in flight
    def _report(self, record: dict, trial, job: dict, pruned: dict) -> None:
        """Report the epochs Optuna has not seen; cancel the trial if the pruner says so."""
        metric = record["objective"]["metric"]
        if metric not in EPOCH_METRICS or trial.number in pruned:
            return
        handle = self._handle(trial)
        reported = set(trial.intermediate_values)
        if reported and trial.number not in self.judged:
            # a new coordinator judges the latest reported epoch again (same answer)
            if self._judge(record, handle, job, max(reported), pruned):
                return
        # report and judge epoch by epoch, as Optuna's report/should_prune loop does: judging
        # only the latest of several new epochs would enter its value at an earlier rung
        # (successive halving) or compare it with other trials' earlier epochs (median)
        for entry in job.get("history") or []:
            value = entry.get(metric)
            if value is not None and entry["epoch"] not in reported:
                handle.report(float(value), entry["epoch"])
                reported.add(entry["epoch"])
                if self._judge(record, handle, job, entry["epoch"], pruned):
                    return

    def _judge(self, record: dict, handle: optuna.Trial, job: dict, epoch: int, pruned) -> bool:
        """Ask the pruner about the trial at its latest reported ``epoch``; True if pruned."""
        self.judged[handle.number] = epoch
        if epoch >= int(job["spec"]["epochs"]) or job["status"] not in ("queued", "running"):
            return False
        if record["pruner"] == "none" or not handle.should_prune():
            return False
        self._prune(handle.number, job["id"], epoch, pruned)
        return True

    def _prune(self, number: int, job_id: str, epoch: int, pruned: dict) -> None:
        """Write the prune down, then cancel the job (unless it finished first)."""
        self.studies.mark_pruned(self.study_id, number, epoch)
        if not self._cancel(job_id, f"pruned at epoch {epoch}"):
            self.studies.unmark_pruned(self.study_id, number)  # it finished first
        else:
            pruned[number] = epoch

    def _tell(self, record: dict, number: int, job: dict, pruned: dict) -> None:
        """Tell Optuna how a finished trial job ended."""
        if job["status"] == "succeeded" and number in pruned:
            # the job ran to its end before it read the cancel (fast epochs): it is complete,
            # and the study must not call a trained, stored model "pruned"
            self.studies.unmark_pruned(self.study_id, number)
            pruned.pop(number)
        if number in pruned:
            self.study.tell(number, state=TrialState.PRUNED, skip_if_finished=True)
        elif job["status"] == "succeeded":
            value = objective_value(record["objective"]["metric"], job)
            if value is None:
                metric = record["objective"]["metric"]
                self._tell_failed(number, "failed", f"the job reported no finite {metric}")
            else:
                self.study.tell(number, value, skip_if_finished=True)
        elif job["status"] == "failed":
            self._tell_failed(number, "failed", job.get("status_reason") or "failed")
        else:  # cancelled by its user or by the study: not a failure of the trial itself
            self._tell_failed(number, "cancelled", job.get("status_reason") or "cancelled")
        self.live.pop(number, None)

    def _tell_failed(self, number: int, outcome: str, reason: str) -> None:
        trial = self.study.get_trials(deepcopy=False)[number]
        if trial.state.is_finished():
            return
        handle = self._handle(trial)
        handle.set_user_attr("outcome", outcome)  # only "failed" counts against max_failed
        handle.set_user_attr("reason", reason)
        self.study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
        self.live.pop(number, None)

    def _cancel(self, job_id: str, reason: str) -> bool:
        """Ask the trial's job to stop; False when it had already finished."""
        try:
            self.jobs.request_cancel(job_id, reason)
            return True
        except JobFinishedError:
            return False

    # new trials
    def _ask_more(self, record: dict) -> None:
        """Ask Optuna for trials while the budget, ``max_parallel`` and the tenant allow."""
        frozen = self.study.get_trials(deepcopy=False)
        running = sum(t.state == TrialState.RUNNING for t in frozen)
        room = self.settings.max_active_jobs_per_tenant - self._tenant_active(record["tenant"])
        budget = trial_budget(record) - len(frozen)
        for _ in range(max(0, min(budget, record["max_parallel"] - running, room))):
            trial = self.study.ask()
            self.live[trial.number] = trial
            self._submit(record, trial.number)

    def _submit(self, record: dict, number: int) -> str | None:
        """Submit trial ``number``'s job unless it exists (its id was reserved before)."""
        trial = self.study.get_trials(deepcopy=False)[number]
        point = suggest_point(self._handle(trial), record["space"])
        job_id = self.studies.reserve_job_id(self.study_id, number)
        if self.jobs.get(job_id) is None:
            spec = apply_point(record["base_spec"], point)
            spec["name"] = f"{record['name']}-trial{number}"[:100]
            fields = {"study_id": self.study_id, "trial": number}
            limit = self.settings.max_active_jobs_per_tenant
            try:
                self.submit(self.redis, spec, record["tenant"], limit, job_id=job_id, fields=fields)
            except ActiveJobLimitError:
                return None  # the tenant's other jobs took the room: the trial waits for it
            except DatasetGoneError as error:  # deleted while the study ran: no job can start
                self._tell_failed(number, "failed", str(error))
                return None
        return job_id

    def _handle(self, trial) -> optuna.Trial:
        """A live ``Trial`` for a running frozen trial (rebuilt after a coordinator restart)."""
        if trial.number not in self.live:
            # FrozenTrial keeps its storage id private; Trial(study, id) is Optuna's public way
            # back to a running trial, the one ask() itself uses.
            self.live[trial.number] = optuna.trial.Trial(self.study, trial._trial_id)
        return self.live[trial.number]

    # bookkeeping
    def _job_records(self, jobs_of: dict[int, str]) -> dict[str, dict]:
        ids = list(jobs_of.values())
        raws = self.jobs.redis.mget([job_key(job_id) for job_id in ids]) if ids else []
        return {i: json.loads(raw) for i, raw in zip(ids, raws, strict=True) if raw is not None}

    def _tenant_active(self, tenant: str) -> int:
        """The tenant's unfinished jobs: study trials count against its active-job limit."""
        ids = self.jobs.active_ids()
        raws = self.jobs.redis.mget([job_key(job_id) for job_id in ids]) if ids else []
        records = (json.loads(raw) for raw in raws if raw is not None)
        return sum(r["tenant"] == tenant and r["status"] not in TERMINAL for r in records)

    def _relaunch_queued(self, record: dict) -> None:
        """After a coordinator restart: re-send ``start_job`` for queued trial jobs (a no-op for
        the ones already launched) in case the old coordinator died between create and send."""
        from worker.tasks import start_job

        for job_id in self.studies.trial_jobs(self.study_id).values():
            job = self.jobs.get(job_id)
            if job is not None and job["status"] == "queued" and job["attempt"] == 0:
                start_job.delay(job_id)

    def _stop_reason(self, record: dict, frozen) -> str | None:
        if record.get("cancel_requested"):
            return "study cancelled"
        failed = sum(t.user_attrs.get("outcome") == "failed" for t in frozen)
        if failed > record["max_failed"]:
            return f"study failed: {failed} failed trials (max_failed {record['max_failed']})"
        return None

    def _write_summary(self, record: dict, stopping: str | None) -> bool:
        """Store the trials table and, once nothing runs any more, the final status."""
        frozen = self.study.get_trials(deepcopy=False)
        jobs_of = self.studies.trial_jobs(self.study_id)
        summary = summarize(
            frozen, jobs_of, self._job_records(jobs_of), record["objective"]["direction"]
        )
        running = summary["counts"]["running"]
        status, reason = "running", f"{running} trial(s) running, {len(frozen)} started"
        if stopping:
            reason = f"{stopping}; waiting for {running} trial(s) to stop"
        if running == 0 and (stopping or len(frozen) >= trial_budget(record)):
            status, reason = final_status(stopping, summary)
        changes = summary | {"status": status, "status_reason": reason}
        running_on = status == "running"
        if changes != self.written:
            previous = {row["trial"]: row for row in (self.written or {}).get("trials", [])}
            for row in summary["trials"]:
                if previous.get(row["trial"]) != row:
                    self.studies.publish(self.study_id, "trial", {"status": "running", **row})
            # while running, the ``trial`` events carry the news; the final status ends the stream
            self.studies.update(self.study_id, changes, event=None if running_on else "status")
            self.written = changes
        return running_on


def trial_budget(record: dict) -> int:
    """Trials to run: ``max_trials``, or the grid's size when that is smaller."""
    size = grid_size(record["space"]) if record["sampler"] == "grid" else None
    return min(record["max_trials"], size) if size else record["max_trials"]


def final_status(stopping: str | None, summary: dict) -> tuple[str, str]:
    if stopping == "study cancelled":
        return "cancelled", "cancelled by its user"
    if stopping:
        return "failed", stopping
    if summary["best_trial"] is None:
        return "failed", "no trial completed"
    return "succeeded", None


def objective_value(metric: str, job: dict) -> float | None:
    """The trial's result: the last epoch's value of an epoch metric, else the test metric."""
    if metric in EPOCH_METRICS:
        history = job.get("history") or []
        value = history[-1].get(metric) if history else None
    else:
        value = (job.get("metrics") or {}).get(metric)
    return float(value) if value is not None and math.isfinite(value) else None
