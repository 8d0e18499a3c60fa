"""``gradq keys create TENANT``: a new API key, shown once, stored only as its hash."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from worker.config import get_settings

keys_app = typer.Typer(
    help="API keys (stored hashed in GRADQ_API_KEYS_FILE).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@keys_app.command("create")
def create(
    tenant: Annotated[str, typer.Argument(help="Tenant the key belongs to")],
    keys_file: Annotated[
        Path | None, typer.Option(help="Keys file (default GRADQ_API_KEYS_FILE)")
    ] = None,
) -> None:
    """Add a key for TENANT; the key is printed once, alone on the last line."""
    from api.keys import create_key

    path = keys_file or get_settings().api_keys_file
    if path is None:
        typer.echo("error: set GRADQ_API_KEYS_FILE or pass --keys-file", err=True)
        raise typer.Exit(2)
    try:
        key = create_key(Path(path), tenant)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"Created an API key for tenant {tenant!r} (hash stored in {path}).")
    typer.echo("Store it now: it is not shown again.")
    typer.echo(key)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``gradq`` app."""
    app.add_typer(keys_app, name="keys")
