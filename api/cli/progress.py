"""A rich live progress bar fed by a job's SSE events: epoch, step, loss, accuracy, ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


class JobProgress:
    """``update(event_name, data)`` for each SSE event; use as a context manager."""

    def __init__(self, console: Console):
        self._progress = Progress(
            TextColumn("[bold]{task.fields[status]}"),
            BarColumn(),
            TextColumn("epoch {task.fields[epoch]} step {task.fields[steps]}"),
            TextColumn("loss {task.fields[loss]} acc {task.fields[accuracy]}"),
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
        if name == "end" and data.get("status") == "succeeded" and task.total:
            fields["completed"] = task.total
        total = fields.get("total", task.total)
        done = fields.get("completed", task.completed)
        fields["steps"] = f"{done:.0f}/{total:.0f}" if total else f"{done:.0f}"
        self._progress.update(self._task, **fields)
