"""Job progress fed by its SSE events: a live bar on a terminal, a line per epoch off one (and a
progress line within a long epoch, so a CI log shows the job is alive).

The accuracy shown is the validation accuracy of the last finished epoch (labelled ``val acc``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


class JobProgress:
    """``update(event_name, data)`` for each SSE event; use as a context manager."""

    def __init__(self, console: Console):
        self._progress = Progress(
            TextColumn("[bold]{task.fields[status]}"),
            BarColumn(),
            TextColumn("epoch {task.fields[epoch]} step {task.fields[steps]}"),
            TextColumn("loss {task.fields[loss]} val acc {task.fields[accuracy]}"),
            TimeRemainingColumn(),
            console=console,
        )
        self._epochs = None
        self._task = self._progress.add_task(
            "job", total=None, status="queued", epoch="-", steps="-", loss="-", accuracy="-"
        )

    def __enter__(self) -> JobProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def update(self, name: str, data: dict) -> None:
        fields: dict = {}
        if data.get("epochs"):
            self._epochs = data["epochs"]
        if data.get("status"):
            fields["status"] = data["status"]
        if data.get("epoch") is not None:
            epochs = self._epochs
            fields["epoch"] = f"{data['epoch']}/{epochs}" if epochs else str(data["epoch"])
        loss = data.get("train_loss", data.get("loss"))
        if isinstance(loss, int | float):
            fields["loss"] = f"{loss:.4f}"
        history = data.get("history") or []
        accuracy = data.get("val_accuracy", history[-1].get("val_accuracy") if history else None)
        if isinstance(accuracy, int | float):
            fields["accuracy"] = f"{accuracy:.3f}"
        if data.get("steps_total"):
            fields["total"] = data["steps_total"]
        if data.get("step") is not None:
            fields["completed"] = data["step"]
        task = self._progress.tasks[0]
        total = fields.get("total", task.total)
        done = fields.get("completed", task.completed)
        fields["steps"] = f"{done:.0f}/{total:.0f}" if total else f"{done:.0f}"
        self._progress.update(self._task, **fields)


class EpochLines:
    """Off a terminal: one line per status change and per finished epoch, and a progress line
    (``epoch 2/10: step 1200/4690, loss 0.3456``) when ``every`` seconds pass without a line
    during an epoch. Same interface as JobProgress."""

    def __init__(
        self, console: Console, every: float = 30.0, clock: Callable[[], float] = time.monotonic
    ):
        self.console, self._epochs, self._status = console, None, None
        self._every, self._clock = every, clock
        self._last_line = clock()

    def __enter__(self) -> EpochLines:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, name: str, data: dict) -> None:
        self._epochs = data.get("epochs") or self._epochs
        status = data.get("status")
        if status and status != self._status and name in ("state", "status"):
            self._status = status
            reason = f" ({data['status_reason']})" if data.get("status_reason") else ""
            self._say(f"status {status}{reason}")
        if name == "epoch" and data.get("history"):
            self._say(epoch_line(data["history"][-1], self._epochs))
        elif name == "progress" and self._clock() - self._last_line >= self._every:
            self._say(step_line(data, self._epochs))

    def _say(self, line: str) -> None:
        self._last_line = self._clock()
        self.console.print(line, markup=False, highlight=False)


def step_line(progress: dict, epochs: int | None) -> str:
    """``epoch 2/10: step 1200/4690, loss 0.3456`` (steps count over the whole job)."""
    of = f"/{epochs}" if epochs else ""
    total = f"/{progress['steps_total']}" if progress.get("steps_total") else ""
    line = f"epoch {progress.get('epoch')}{of}: step {progress.get('step')}{total}"
    loss = progress.get("train_loss")
    return line + (f", loss {loss:.4f}" if isinstance(loss, int | float) else "")


def epoch_line(summary: dict, epochs: int | None) -> str:
    """``epoch 3/10: train loss 0.1234, val loss 0.2345, val acc 0.951, 1.2 s``"""
    of = f"/{epochs}" if epochs else ""
    parts = [f"epoch {summary.get('epoch')}{of}:"]
    for key, label, digits in (
        ("train_loss", "train loss", 4),
        ("val_loss", "val loss", 4),
        ("val_accuracy", "val acc", 3),
    ):
        if isinstance(summary.get(key), int | float):
            parts.append(f"{label} {summary[key]:.{digits}f},")
    if isinstance(summary.get("seconds"), int | float):
        parts.append(f"{summary['seconds']:.1f} s")
    return " ".join(parts).rstrip(",")


def job_progress(console: Console, every: float = 30.0) -> JobProgress | EpochLines:
    """The live bar on a terminal, epoch lines (and a progress line at most ``every`` seconds
    within an epoch) elsewhere."""
    return JobProgress(console) if console.is_terminal else EpochLines(console, every)
