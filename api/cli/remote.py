"""Remote commands: talk HTTP to ``GRADQ_API_URL`` with ``GRADQ_API_KEY`` (and ``gradq serve``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Column, Table

from api.cli.json_file import JsonFileError, read_json_file
from api.cli.output import make_console, print_error, print_json, print_table
from api.client import ApiError, GradqClient
from worker.config import get_settings

console = make_console()
T = TypeVar("T")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the API's JSON on one line")]
FINAL = ("succeeded", "failed", "cancelled")
ID_WIDTH = 20  # "job_" / "mdl_" / "ds_" + 16 hex: ids are for copying, never truncated


def id_column(header: str = "id") -> Column:
    """A fresh column for ids (a rich Column keeps its table's cells, so none is shared)."""
    return Column(header, no_wrap=True, min_width=ID_WIDTH)


datasets_app = typer.Typer(help="Uploaded data sets.", no_args_is_help=True, rich_markup_mode=None)


def client() -> GradqClient:
    settings = get_settings()
    return GradqClient(settings.api_url, settings.api_key)


def call(request: Callable[[GradqClient], T]) -> T:
    """``request(api)`` on a fresh client, closed after; an ApiError is printed and exits 1."""
    with client() as api:
        try:
            return request(api)
        except ApiError as error:
            fail(error)


def fail(error: ApiError) -> None:
    print_error(error)
    raise typer.Exit(1)


def read_json_or_exit(path: Path) -> Any:
    """The JSON document in ``path``; a file that is not JSON is one error line and exit 2."""
    try:
        return read_json_file(path)
    except JsonFileError as error:
        print_error(error)
        raise typer.Exit(2) from None


def submit(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Job spec JSON")],
    wait: Annotated[bool, typer.Option("--wait", help="Show live progress until it ends")] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the API's answer on one line (with --wait: the final job record;"
            " progress goes to stderr)",
        ),
    ] = False,
):
    """Submit a training job; with --wait exit non-zero unless it succeeds."""
    from api.cli.follow import follow

    document = read_json_or_exit(spec)
    with client() as api:
        try:
            job = api.submit(document)
        except ApiError as error:
            fail(error)
        if as_json and not wait:
            print_json(job)
            return
        # with --json, stdout holds only the final record: everything else goes to stderr
        shown = make_console(stderr=True) if as_json else console
        shown.print(f"submitted {job['id']} ({job['status']})")
        if wait:
            final = follow(api, job["id"], shown)
            if as_json:
                print_json(final)
            raise typer.Exit(0 if final.get("status") == "succeeded" else 1)


def status(job_id: str, as_json: JsonFlag = False):
    """Show a job: status, progress, accuracy, model, timing (--json: the whole record)."""
    from api.cli.job_summary import summary_lines

    with client() as api:
        try:
            record = api.job(job_id)
            if as_json:
                print_json(record)
                return
            model = None
            if record.get("model_id"):
                try:
                    model = api.model(record["model_id"])
                except ApiError:  # deleted since: the id is still worth showing
                    model = None
        except ApiError as error:
            fail(error)
    for line in summary_lines(record, model):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def watch(
    job_id: str,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final job record on one line")
    ] = False,
):
    """Follow a job's progress live until it ends (exit 1 unless it succeeds)."""
    from api.cli.follow import follow

    with client() as api:
        final = follow(api, job_id, make_console(stderr=True) if as_json else console)
    if as_json:
        print_json(final)
    raise typer.Exit(0 if final.get("status") == "succeeded" else 1)


def cancel(job_id: str):
    """Ask a job to stop."""
    job = call(lambda api: api.cancel(job_id))
    console.print(f"{job['id']}: {job['status']}")


def metrics(
    job_id: str,
    csv: Annotated[bool, typer.Option("--csv", help="CSV rows instead of JSON")] = False,
    max_points: Annotated[int, typer.Option(help="Average the step curve down to this")] = 1000,
):
    """Print a job's training curves (loss per step, per-epoch series) for export."""
    body = call(lambda api: api.metrics(job_id, "csv" if csv else "json", max_points))
    if csv:
        sys.stdout.write(body.decode())
    else:
        sys.stdout.write(json.dumps(body) + "\n")


def predict(
    model_id: str,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    as_json: JsonFlag = False,
):
    """Predict with MODEL on FILE (.npy, .npz first array, .csv rows, .png/.jpg image).

    A CSV with a header row may keep the training set's label column: it is dropped by name."""
    from api.cli.inputs import read_inputs

    with client() as api:
        try:
            if file.suffix.lower() in (".png", ".jpg", ".jpeg"):
                answer = api.predict_image(model_id, file)
            elif file.suffix.lower() == ".csv":
                # the training CSV's label column, recorded with the model, is dropped by name
                label_column = api.model(model_id).get("label_column")
                answer = api.predict(model_id, read_inputs(file, label_column))
            else:
                answer = api.predict(model_id, read_inputs(file))
        except ValueError as error:
            print_error(error)
            raise typer.Exit(2) from None
        except ApiError as error:
            fail(error)
    if as_json:
        print_json(answer)
    else:
        print_predictions(answer)


def print_predictions(answer: dict) -> None:
    """One tab-separated line per sample: index, label and probability (classifiers), or index
    and outputs; ``--json`` gives the full answer."""
    if "predictions" not in answer:
        for index, output in enumerate(answer.get("outputs", [])):
            typer.echo(f"{index}\t{json.dumps(output)}")
        return
    labels = answer.get("labels") or [str(p) for p in answer["predictions"]]
    probabilities = answer.get("probabilities") or [None] * len(labels)
    for index, (label, row) in enumerate(zip(labels, probabilities, strict=True)):
        confidence = f"\t{max(row):.3f}" if row else ""
        typer.echo(f"{index}\t{label}{confidence}")


@datasets_app.command("upload")
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    label_column: Annotated[
        str | None, typer.Option(help="CSV label column (default: the last)")
    ] = None,
    as_json: JsonFlag = False,
):
    """Upload a .npz or .csv data set."""
    record = call(lambda api: api.upload_dataset(file, label_column))
    if as_json:
        print_json(record)
        return
    console.print_json(json.dumps(record))  # the whole record: its id, shapes and classes


@datasets_app.command("list")
def list_datasets(as_json: JsonFlag = False):
    """List your uploaded data sets."""
    listing = call(lambda api: api.datasets())
    if as_json:
        print_json(listing)
        return
    table = Table(id_column(), "name", "task", "input shape", "bytes")
    for dataset in listing["datasets"]:
        shape = dataset.get("input_shape")
        table.add_row(
            dataset["id"],
            dataset.get("name") or "",
            dataset.get("task") or "",
            str(shape) if shape else "",
            str(dataset.get("size_bytes") or ""),
        )
    print_table(console, table)


@datasets_app.command("delete")
def delete_dataset(dataset_id: str):
    """Delete an uploaded data set (refused while an active job uses it)."""
    call(lambda api: api.delete_dataset(dataset_id))
    console.print(f"deleted {dataset_id}")


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
        print_error(error)
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``gradq`` app."""
    for command in (submit, status, watch, cancel, metrics, predict, serve):
        app.command()(command)
    app.add_typer(datasets_app, name="datasets")
