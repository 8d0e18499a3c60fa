"""``gradq study create FILE [--wait]`` (trials shown as they run), ``show`` and ``cancel``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from api.cli.output import print_table
from api.cli.remote import call, client, console, fail, read_json_or_exit
from api.cli.study_progress import apply_event, best_line, study_progress, trials_table
from api.client import ApiError, GradqClient

study_app = typer.Typer(
    help="Hyperparameter studies (trials are ordinary jobs).", no_args_is_help=True
)


def follow_study(api: GradqClient, study_id: str) -> dict:
    """Show the study's progress from its events until it ends; the final record."""
    study = api.study(study_id)
    try:
        with study_progress(console, study) as progress:
            for name, data in api.study_events(study_id):
                study = apply_event(study, name, data)
                progress.update(study, name, data)
            study = api.study(study_id)
            progress.finish(study)
    except ApiError as error:
        fail(error)
    except KeyboardInterrupt:
        console.print("stopped watching (the study keeps running)")
        sys.exit(130)
    return study


@study_app.command("create")
def create(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Study JSON")],
    wait: Annotated[bool, typer.Option("--wait", help="Show the trials until it ends")] = False,
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
            if final.get("best_trial"):
                console.print(best_line(final["best_trial"]), markup=False, highlight=False)
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
