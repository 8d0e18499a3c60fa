"""``gradq status JOB``: a job record as a few lines a person reads (``--json`` has it all).

job_4f0c… digits-mlp: succeeded (stopped early: no improvement)
progress  epoch 7/10, step 700/1000 (70%)
accuracy  best val 0.9611 (epoch 5), test 0.9580
model     mdl_9a2b… (digits-mlp/versions/3)
restarts  0, resumes 0
started   2026-11-29 23:10:05 UTC, ran 1 min 23 s
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def summary_lines(job: dict, model: dict | None = None, now: float | None = None) -> list[str]:
    """The lines for ``job`` (a ``GET /v1/jobs/ID`` record); ``model`` is its model record when it
    has one (for the registry name and version); ``now`` (unix s) times a job still running."""
    reason = f" ({job['status_reason']})" if job.get("status_reason") else ""
    name = f" {job['name']}" if job.get("name") else ""
    lines = [f"{job['id']}{name}: {job['status']}{reason}"]
    lines.append(f"progress  {_progress(job)}")
    accuracy = _accuracy(job)
    if accuracy:
        lines.append(f"accuracy  {accuracy}")
    if job.get("model_id"):
        ref = ""
        if model and model.get("name") and model.get("version") is not None:
            ref = f" ({model['name']}/versions/{model['version']})"
        lines.append(f"model     {job['model_id']}{ref}")
    lines.append(f"restarts  {job.get('restarts', 0)}, resumes {job.get('resumes', 0)}")
    lines.append(_timing(job, time.time() if now is None else now))
    return lines


def _progress(job: dict) -> str:
    epochs = f"/{job['epochs']}" if job.get("epochs") else ""
    parts = [f"epoch {job.get('epoch') or '-'}{epochs}"]  # epoch 0: none has started
    total = f"/{job['steps_total']}" if job.get("steps_total") else ""
    parts.append(f"step {job.get('step') or 0}{total} ({job.get('progress', 0):.0%})")
    return ", ".join(parts)


def _accuracy(job: dict) -> str:
    scored = [r for r in job.get("history") or [] if _number(r.get("val_accuracy"))]
    parts = []
    if scored:
        best = max(scored, key=lambda row: row["val_accuracy"])
        parts.append(f"best val {best['val_accuracy']:.4f} (epoch {best['epoch']})")
    test = (job.get("metrics") or {}).get("test_accuracy")
    if _number(test):
        parts.append(f"test {test:.4f}")
    return ", ".join(parts)


def _timing(job: dict, now: float) -> str:
    started, finished = _seconds(job.get("started_at")), _seconds(job.get("finished_at"))
    if started is None:
        created = _seconds(job.get("created_at"))
        return "started   not yet" + (f" (submitted {_when(created)})" if created else "")
    if finished is not None:
        return f"started   {_when(started)}, ran {_duration(finished - started)}"
    return f"started   {_when(started)}, running for {_duration(now - started)}"


def _seconds(value) -> float | None:
    """A record time (unix seconds, or an ISO string from older records) as unix seconds."""
    if _number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def _when(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    """``45 s``, ``3 min 05 s``, ``2 h 07 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
