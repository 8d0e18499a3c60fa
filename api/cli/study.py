"""``gradq study create FILE [--wait]`` (trials shown as they run), ``show`` and ``cancel``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from api.cli.follow import reconnecting
from api.cli.output import make_console, print_error, print_json, print_table
from api.cli.remote import (
    JsonFlag,
    call,
    client,
    console,
    fail,
    read_json_or_exit,
)
from api.cli.study_progress import apply_event, best_line, study_progress, trials_table
from api.client import ApiError, GradqClient
from worker.config import get_settings

study_app = typer.Typer(
    help="Hyperparameter studies (trials are ordinary jobs).", no_args_is_help=True
)


def follow_study(api: GradqClient, study_id: str, shown: Console) -> dict:
    """Show the study's progress from its events on ``shown`` until it ends, reconnecting when
    the API goes away for a while; the final record."""
    from api.cli.reconnect import ApiGoneError

    retry = reconnecting(get_settings().cli_reconnect_seconds)
    path = f"/v1/studies/{study_id}/events"
    try:
        study = retry.call(lambda: api.study(study_id))
        with study_progress(shown, study) as progress:
            for name, data in retry.events(lambda last_id: api.open_events(path, last_id)):
                study = apply_event(study, name, data)
                progress.update(study, name, data)
            study = retry.call(lambda: api.study(study_id))
            progress.finish(study)
    except ApiGoneError as error:
        print_error(f"{error}; the study keeps running: gradq study show {study_id}")
        raise typer.Exit(1) from None
    except ApiError as error:
        fail(error)
    except KeyboardInterrupt:
        shown.print("stopped watching (the study keeps running)")
        sys.exit(130)
    return study


@study_app.command("create")
def create(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Study JSON")],
    wait: Annotated[bool, typer.Option("--wait", help="Show the trials until it ends")] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the API's answer on one line (with --wait: the final study record;"
            " progress goes to stderr)",
        ),
    ] = False,
):
    """Start a study; with --wait exit non-zero unless it succeeds."""
    document = read_json_or_exit(file)
    with client() as api:
        try:
            study = api.create_study(document)
        except ApiError as error:
            fail(error)
        if as_json and not wait:
            print_json(study)
            return
        shown = make_console(stderr=True) if as_json else console
        shown.print(f"created {study['id']} ({study['status']})")
        if wait:
            final = follow_study(api, study["id"], shown)
            if final.get("best_trial"):
                shown.print(best_line(final["best_trial"]), markup=False, highlight=False)
            if as_json:
                print_json(final)
            raise typer.Exit(0 if final["status"] == "succeeded" else 1)


@study_app.command("show")
def show(study_id: str, as_json: JsonFlag = False):
    """A study's trials table."""
    study = call(lambda api: api.study(study_id))
    if as_json:
        print_json(study)
    else:
        print_table(console, trials_table(study))


@study_app.command("cancel")
def cancel(study_id: str):
    """Stop a study and its running trials."""
    study = call(lambda api: api.cancel_study(study_id))
    console.print(f"{study['id']}: {study['status_reason']}")


def register(app: typer.Typer) -> None:
    """Add ``gradq study ...`` to the app."""
    app.add_typer(study_app, name="study")
