"""``gradq study create STUDY.json [--wait]`` (a live table of trials) and ``gradq study show``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Column, Table

from api.cli.output import print_table
from api.cli.remote import call, client, console, fail, id_column, read_json_or_exit
from api.client import ApiError, GradqClient

study_app = typer.Typer(
    help="Hyperparameter studies (trials are ordinary jobs).", no_args_is_help=True
)


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
        params = [_short(row["params"].get(path)) for path in paths]
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


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def follow_study(api: GradqClient, study_id: str) -> dict:
    """Redraw the trials table on each event of the study until it ends; the final record."""
    study = api.study(study_id)
    try:
        with Live(trials_table(study), console=console, auto_refresh=False) as live:
            for name, data in api.study_events(study_id):
                if name == "state":
                    study = data
                elif name == "trial":
                    rows = {row["trial"]: row for row in study["trials"]}
                    rows[data["trial"]] = {k: v for k, v in data.items() if k != "type"}
                    study["trials"] = [rows[n] for n in sorted(rows)]
                elif name in ("status", "patched", "cancel"):
                    study |= {k: v for k, v in data.items() if k != "type"}
                live.update(trials_table(study), refresh=True)
            study = api.study(study_id)
            live.update(trials_table(study), refresh=True)
    except ApiError as error:
        fail(error)
    except KeyboardInterrupt:
        console.print("stopped watching (the study keeps running)")
        sys.exit(130)
    return study


@study_app.command("create")
def create(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Study JSON")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Live table of trials until it ends")
    ] = False,
):
    """Start a study; with --wait exit non-zero unless it succeeds."""
    document = read_json_or_exit(file)
    with client() as api:
        try:
            study = api.create_study(document)
        except ApiError as error:
            fail(error)
        console.print(f"created {study['id']} ({study['status']})")
        if wait:
            final = follow_study(api, study["id"])
            best = final.get("best_trial")
            if best:
                console.print(
                    f"best: trial {best['trial']} value {best['value']:.4f} {best['params']}"
                )
            raise typer.Exit(0 if final["status"] == "succeeded" else 1)


@study_app.command("show")
def show(study_id: str):
    """A study's trials table."""
    with client() as api:
        try:
            print_table(console, trials_table(api.study(study_id)))
        except ApiError as error:
            fail(error)


@study_app.command("cancel")
def cancel(study_id: str):
    """Stop a study and its running trials."""
    study = call(lambda api: api.cancel_study(study_id))
    console.print(f"{study['id']}: {study['status_reason']}")


def register(app: typer.Typer) -> None:
    """Add ``gradq study ...`` to the app."""
    app.add_typer(study_app, name="study")
