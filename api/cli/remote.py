"""Remote commands: talk HTTP to ``GRADQ_API_URL`` with ``GRADQ_API_KEY`` (and ``gradq serve``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column

from api.client import ApiError, GradqClient
from worker.config import get_settings

console = Console()
FINAL = ("succeeded", "failed", "cancelled")
ID_WIDTH = 20  # "job_" / "mdl_" / "ds_" + 16 hex: ids are for copying, never truncated


def ID_OF(header: str) -> Column:  # noqa: N802 - reads like a constant next to ID
    return Column(header, no_wrap=True, min_width=ID_WIDTH)


ID = ID_OF("id")
datasets_app = typer.Typer(help="Uploaded data sets.", no_args_is_help=True)


def client() -> GradqClient:
    settings = get_settings()
    return GradqClient(settings.api_url, settings.api_key)


def fail(error: ApiError) -> None:
    console.print(f"[red]error[/red] {escape(str(error))}")  # "gradq[onnx]" is not markup
    raise typer.Exit(1)


def submit(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Job spec JSON")],
    wait: Annotated[bool, typer.Option("--wait", help="Show live progress until it ends")] = False,
):
    """Submit a training job; with --wait exit non-zero unless it succeeds."""
    with client() as api:
        try:
            job = api.submit(json.loads(spec.read_text()))
        except ApiError as error:
            fail(error)
        console.print(f"submitted {job['id']} ({job['status']})")
        if wait:
            final = follow(api, job["id"])
            raise typer.Exit(0 if final.get("status") == "succeeded" else 1)


def status(job_id: str):
    """Show a job's record."""
    with client() as api:
        try:
            console.print_json(json.dumps(api.job(job_id)))
        except ApiError as error:
            fail(error)


def watch(job_id: str):
    """Follow a job's progress live until it ends (exit 1 unless it succeeds)."""
    with client() as api:
        final = follow(api, job_id)
    raise typer.Exit(0 if final.get("status") == "succeeded" else 1)


def cancel(job_id: str):
    """Ask a job to stop."""
    with client() as api:
        try:
            job = api.cancel(job_id)
        except ApiError as error:
            fail(error)
    console.print(f"{job['id']}: {job['status']}")


def metrics(
    job_id: str,
    csv: Annotated[bool, typer.Option("--csv", help="CSV rows instead of JSON")] = False,
    max_points: Annotated[int, typer.Option(help="Average the step curve down to this")] = 1000,
):
    """Print a job's training curves (loss per step, per-epoch series) for export."""
    with client() as api:
        try:
            body = api.metrics(job_id, "csv" if csv else "json", max_points)
        except ApiError as error:
            fail(error)
    if csv:
        sys.stdout.write(body.decode())
    else:
        sys.stdout.write(json.dumps(body) + "\n")


def predict(model_id: str, file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]):
    """Predict with MODEL on FILE (.npy, .npz first array, .csv rows, .png/.jpg image)."""
    from api.cli.inputs import read_inputs

    with client() as api:
        try:
            if file.suffix.lower() in (".png", ".jpg", ".jpeg"):
                answer = api.predict_image(model_id, file)
            else:
                answer = api.predict(model_id, read_inputs(file))
        except ValueError as error:
            console.print(f"[red]error[/red] {error}")
            raise typer.Exit(2) from None
        except ApiError as error:
            fail(error)
    console.print_json(json.dumps(answer))


@datasets_app.command("upload")
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    label_column: Annotated[
        str | None, typer.Option(help="CSV label column (default: the last)")
    ] = None,
):
    """Upload a .npz or .csv data set."""
    with client() as api:
        try:
            console.print_json(json.dumps(api.upload_dataset(file, label_column)))
        except ApiError as error:
            fail(error)


@datasets_app.command("list")
def list_datasets():
    """List your uploaded data sets."""
    with client() as api:
        console.print_json(json.dumps(api.datasets()))


def serve(
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow no API keys on a non-loopback address")
    ] = False,
):
    """Run the API server (refuses an open non-loopback address without keys)."""
    from api.serve import InsecureBindError
    from api.serve import serve as run

    try:
        run(host, port, insecure=insecure, workers=workers, log=lambda m: console.print(m))
    except InsecureBindError as error:
        console.print(f"[red]error[/red] {error}")
        raise typer.Exit(2) from None


def follow(api: GradqClient, job_id: str) -> dict:
    """Live progress bar from the job's events; returns the final job record."""
    from api.cli.progress import JobProgress

    with JobProgress(console) as bar:
        try:
            for name, data in api.events(job_id):
                bar.update(name, data)
        except ApiError as error:
            fail(error)
        except KeyboardInterrupt:
            console.print("stopped watching (the job keeps running)")
            sys.exit(130)
    final = api.job(job_id)
    colour = "green" if final["status"] == "succeeded" else "red"
    reason = f" ({final['status_reason']})" if final.get("status_reason") else ""
    console.print(
        f"{job_id}: [{colour}]{final['status']}[/{colour}]{reason}"
        + (f" model {final['model_id']}" if final.get("model_id") else "")
    )
    return final


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``gradq`` app."""
    for command in (submit, status, watch, cancel, metrics, predict, serve):
        app.command()(command)
    app.add_typer(datasets_app, name="datasets")
