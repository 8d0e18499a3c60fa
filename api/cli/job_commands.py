"""``gradq jobs [delete|resume]`` and ``gradq logs JOB [-f]``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Column, Table

from api.cli.follow import reconnecting
from api.cli.output import print_error, print_json, print_table
from api.cli.reconnect import ApiGoneError
from api.cli.remote import JsonFlag, call, client, console, fail, id_column
from api.client import ApiError
from worker.config import get_settings

jobs_app = typer.Typer(
    rich_markup_mode=None,
    help="Your jobs: list (default), delete, resume.",
    invoke_without_command=True,
)
LEVEL_COLOURS = {"warning": "yellow", "error": "red"}


@jobs_app.callback()
def jobs(
    ctx: typer.Context,
    status_filter: Annotated[str | None, typer.Option("--status")] = None,
    limit: int = 20,
    as_json: JsonFlag = False,
):
    """List your jobs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    page = call(lambda api: api.jobs(status=status_filter, limit=limit))
    if as_json:
        print_json(page)
        return
    status = Column("status", no_wrap=True, min_width=10)
    table = Table(id_column(), Column("name", max_width=16), status, "progress", id_column("model"))
    for job in page["jobs"]:
        table.add_row(
            job["id"],
            job.get("name") or "",
            job["status"],
            f"{job.get('progress', 0):.0%}",
            job.get("model_id") or "",
        )
    print_table(console, table)


@jobs_app.command("delete")
def delete(
    job_id: str,
    delete_model: Annotated[bool, typer.Option("--delete-model", help="Its model too")] = False,
):
    """Delete a finished job (checkpoint, events, logs; the model stays unless asked)."""
    call(lambda api: api.delete_job(job_id, delete_model))
    console.print(f"deleted {job_id}")


@jobs_app.command("resume")
def resume(
    job_id: str,
    epochs: Annotated[
        int | None, typer.Option(help="New total epochs (at least the job's)")
    ] = None,
):
    """Resume a cancelled or failed job from its last checkpoint."""
    job = call(lambda api: api.resume(job_id, epochs))
    console.print(f"{job['id']}: {job['status']} ({job.get('status_reason') or ''})")


def logs(
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines")] = False,
):
    """A job's log lines: time, shard, level, message."""
    with client() as api:
        try:
            lines = _followed_lines(api, job_id) if follow else _all_lines(api, job_id)
            for line in lines:
                shard = "job" if line.get("shard") is None else f"shard {line['shard']}"
                colour = LEVEL_COLOURS.get(line["level"], "default")
                console.print(
                    f"{line['time']} {shard:>8} [{colour}]{line['level']:<7}[/{colour}] "
                    + escape(line["message"]),
                    highlight=False,
                )
        except ApiGoneError as error:
            print_error(f"{error}; the job keeps running: gradq logs {job_id} -f")
            raise typer.Exit(1) from None
        except ApiError as error:
            fail(error)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


def _followed_lines(api, job_id: str):
    """Every line, then new ones until the job ends, through API restarts (the stream's ids are
    log cursors: a reconnection starts after the last line printed)."""
    path = f"/v1/jobs/{job_id}/logs"

    def open_stream(last_id: str | None):
        cursor = {"cursor": last_id} if last_id else {}
        return api.open_events(path, params={"follow": "true", **cursor})

    retry = reconnecting(get_settings().cli_reconnect_seconds)
    for name, data in retry.events(open_stream):
        if name == "log":
            yield data


def _all_lines(api, job_id: str):
    cursor = None
    while True:
        page = api.logs(job_id, cursor)
        yield from page["lines"]
        cursor = page.get("next_cursor")
        if cursor is None:
            return


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
    app.command()(logs)
