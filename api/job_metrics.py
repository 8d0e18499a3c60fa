"""A job's curves as columns: training loss per recorded step, and the per-epoch history.

Shared by ``GET /v1/jobs/{id}/metrics`` and the dashboard, so a chart and a CSV export always
show the same numbers. Long curves are averaged down server-side (``worker.loss_curve``), so a
100,000-step job costs the browser no more than a short one.
"""

from __future__ import annotations

import csv
import io
import math

from worker.loss_curve import downsample, read_points

EPOCH_SERIES = (
    "train_loss",
    "val_loss",
    "val_accuracy",
    "samples_per_second",
    "comm_seconds",
    "seconds",
)
DEFAULT_MAX_POINTS = 1000


def job_metrics(redis, record: dict, max_points: int = DEFAULT_MAX_POINTS, since: int = 0) -> dict:
    """``{"job_id", "steps": {step, train_loss, time}, "epochs": {epoch, <EPOCH_SERIES>},
    "points_recorded", "downsampled"}``; ``since`` skips the first stored points (for live
    appends: pass the previous answer's ``points_recorded``)."""
    points = read_points(redis, record["id"], since)
    recorded = since + len(points)
    shown = downsample(points, max_points)
    history = record.get("history") or []
    epochs = {"epoch": [entry.get("epoch") for entry in history]}
    for name in EPOCH_SERIES:
        epochs[name] = [_finite(entry.get(name)) for entry in history]
    return {
        "job_id": record["id"],
        "steps": {
            "step": [int(s) for s in shown[:, 0]],
            "train_loss": [_finite(v) for v in shown[:, 1].tolist()],
            "time": shown[:, 2].tolist(),
        },
        "epochs": epochs,
        "points_recorded": recorded,
        "downsampled": len(shown) < len(points),
    }


def metrics_csv_rows(metrics: dict) -> list[list]:
    """Long-format rows ``job_id, series, step, epoch, value`` (one per point)."""
    job_id, rows = metrics["job_id"], []
    steps = metrics["steps"]
    for step, value in zip(steps["step"], steps["train_loss"], strict=True):
        rows.append([job_id, "train_loss_step", step, "", value])
    epochs = metrics["epochs"]
    for name in EPOCH_SERIES:
        for epoch, value in zip(epochs["epoch"], epochs[name], strict=True):
            if value is not None:
                rows.append([job_id, name, "", epoch, value])
    return rows


def to_csv(rows: list[list]) -> str:
    """CSV text with the header ``job_id,series,step,epoch,value``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["job_id", "series", "step", "epoch", "value"])
    writer.writerows(rows)
    return out.getvalue()


def _finite(value):
    return value if isinstance(value, int | float) and math.isfinite(value) else None
