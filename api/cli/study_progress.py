"""Study progress fed by its SSE events: a live trials table on a terminal, a line per trial
event off one (pipes, CI logs), as ``submit --wait`` does for a job's epochs."""

from __future__ import annotations

from rich.console import Console
from rich.live import Live
from rich.table import Column, Table

from api.cli.output import print_table
from api.cli.remote import id_column


def trials_table(study: dict) -> Table:
    """The study's trials, one row each, with the best one marked."""
    best = (study.get("best_trial") or {}).get("trial")
    paths = list(study.get("space") or {})
    status = study["status"] + (
        f" ({study['status_reason']})" if study.get("status_reason") else ""
    )
    fixed = [Column(name, no_wrap=True) for name in ("trial", "state", "value", "epochs")]
    params = [Column(path, overflow="fold") for path in paths]  # long paths wrap, rows do not
    title = f"{study['id']} {study['name']}: {status}"
    table = Table(*fixed, *params, id_column("job"), title=title)
    for row in study.get("trials") or []:
        value = "" if row["value"] is None else f"{row['value']:.4f}"
        params = [short(row["params"].get(path)) for path in paths]
        mark = " *" if row["trial"] == best else ""
        table.add_row(
            f"{row['trial']}{mark}",
            row["state"],
            value,
            str(row["epochs"]),
            *params,
            row["job_id"] or "",
        )
    return table


def short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def params_text(params: dict) -> str:
    """``optimizer.lr=0.0123, model.layers[0].units=16``: a trial's parameters on one line."""
    return ", ".join(f"{path}={short(value)}" for path, value in params.items())


def best_line(best: dict) -> str:
    """``best: trial 2 value 0.9611 params optimizer.lr=0.0123, batch_size=32``"""
    params = params_text(best["params"])
    return f"best: trial {best['trial']} value {best['value']:.4f} params {params}"


def trial_line(row: dict) -> str:
    """``trial 1 running epochs 2 value 0.9400 job job_… params optimizer.lr=0.0123``"""
    parts = [f"trial {row['trial']} {row['state']}", f"epochs {row['epochs']}"]
    if row.get("value") is not None:
        parts.append(f"value {row['value']:.4f}")
    if row.get("job_id"):
        parts.append(f"job {row['job_id']}")
    parts.append(f"params {params_text(row.get('params') or {})}")
    return " ".join(parts)


def apply_event(study: dict, name: str, data: dict) -> dict:
    """The study record after one of its events (``state``, ``trial``, ``status``, ...)."""
    fields = {k: v for k, v in data.items() if k != "type"}
    if name == "state":
        return data
    if name == "trial":
        rows = {row["trial"]: row for row in study.get("trials") or []}
        rows[data["trial"]] = {k: v for k, v in fields.items() if k != "status"}
        return study | {"trials": [rows[n] for n in sorted(rows)]}
    if name in ("status", "patched", "cancel"):
        return study | fields
    return study


class LiveTrials:
    """On a terminal: the trials table, redrawn on each event; use as a context manager."""

    def __init__(self, console: Console, study: dict):
        self._live = Live(trials_table(study), console=console, auto_refresh=False)

    def __enter__(self) -> LiveTrials:
        self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        self._live.stop()

    def update(self, study: dict, name: str, data: dict) -> None:
        self._live.update(trials_table(study), refresh=True)

    def finish(self, study: dict) -> None:
        self._live.update(trials_table(study), refresh=True)


class TrialLines:
    """Off a terminal: a line per trial event and status change, the table once at the end."""

    def __init__(self, console: Console, study: dict):
        self.console, self._status = console, study.get("status")

    def __enter__(self) -> TrialLines:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, study: dict, name: str, data: dict) -> None:
        if name == "trial":
            self._say(trial_line(data))
        elif study.get("status") != self._status:
            self._status = study.get("status")
            reason = f" ({study['status_reason']})" if study.get("status_reason") else ""
            self._say(f"status {self._status}{reason}")

    def finish(self, study: dict) -> None:
        print_table(self.console, trials_table(study))

    def _say(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def study_progress(console: Console, study: dict) -> LiveTrials | TrialLines:
    """The live table on a terminal, trial lines elsewhere."""
    return LiveTrials(console, study) if console.is_terminal else TrialLines(console, study)
