"""Following a job to its end (``submit --wait``, ``watch``): progress from its event stream,
through API restarts, then one line with the outcome."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.text import Text

from api.cli.output import make_console, print_error
from api.cli.progress import job_progress
from api.cli.reconnect import ApiGoneError, Reconnecting
from api.client import ApiError, GradqClient
from worker.config import get_settings


def follow(api: GradqClient, job_id: str, shown: Console) -> dict:
    """Live progress from the job's events on ``shown``, reconnecting when the API goes away
    for a while; returns the final job record. Exits 1 when the API stays away."""
    settings = get_settings()
    retry = reconnecting(settings.cli_reconnect_seconds)
    path = f"/v1/jobs/{job_id}/events"
    with job_progress(shown, settings.cli_progress_seconds) as bar:
        try:
            for name, data in retry.events(lambda last_id: api.open_events(path, last_id)):
                bar.update(name, data)
            final = retry.call(lambda: api.job(job_id))
        except ApiGoneError as error:
            print_error(f"{error}; the job keeps running: gradq watch {job_id}")
            raise typer.Exit(1) from None
        except ApiError as error:  # a refusal (the job deleted, the key revoked)
            print_error(error)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            shown.print("stopped watching (the job keeps running)")
            sys.exit(130)
        bar.update("final", final)  # the real last step (an early stop ends before steps_total)
    colour = "green" if final["status"] == "succeeded" else "red"
    reason = f" ({final['status_reason']})" if final.get("status_reason") else ""
    total = f"/{final['steps_total']}" if final.get("steps_total") else ""
    model = f", model {final['model_id']}" if final.get("model_id") else ""
    tail = f"{reason} at step {final.get('step')}{total}{model}"
    shown.print(Text.assemble(f"{job_id}: ", (final["status"], colour), tail), soft_wrap=True)
    return final


def reconnecting(budget: float) -> Reconnecting:
    """A Reconnecting that says what it does on stderr (stdout may be a ``--json`` document)."""
    notices = make_console(stderr=True)
    return Reconnecting(lambda line: notices.print(line, markup=False, highlight=False), budget)
