"""``gradq models [names|versions|alias|tag|export|upload|delete]``: the registry from the shell.

MODEL is anything the API accepts: ``mdl_…``, ``NAME@ALIAS`` or ``NAME/versions/N``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table

from api.cli.output import print_json, print_table
from api.cli.remote import JsonFlag, call, client, console, fail, id_column
from api.client import ApiError

models_app = typer.Typer(
    rich_markup_mode=None,
    help="Your models: list (default), names, versions, alias, tag, export, upload, delete.",
    invoke_without_command=True,
)


@models_app.callback()
def models(ctx: typer.Context, limit: int = 100, as_json: JsonFlag = False):
    """List your models, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    listing = call(lambda api: api.models(limit=limit))
    if as_json:
        print_json(listing)
        return
    name = Column("name", no_wrap=True, min_width=12)
    table = Table(id_column(), name, "version", "input shape", "test accuracy")
    for model in listing["models"]:
        accuracy = (model.get("metrics") or {}).get("test_accuracy")
        table.add_row(
            model["id"],
            model.get("name") or "",
            str(model.get("version") or ""),
            str(model["input_shape"]),
            "" if accuracy is None else f"{accuracy:.4f}",
        )
    print_table(console, table)


@models_app.command("names")
def names(limit: int = 100, as_json: JsonFlag = False):
    """Your model names, most recently registered first, with their aliases."""
    listing = call(lambda api: api.registry_names(limit=limit))
    if as_json:
        print_json(listing)
        return
    table = Table(Column("name", no_wrap=True, min_width=12), "latest", "versions", "aliases")
    for entry in listing["names"]:
        aliases = ", ".join(f"{a} -> {v}" for a, v in entry["aliases"].items())
        table.add_row(entry["name"], str(entry["latest_version"]), str(entry["versions"]), aliases)
    print_table(console, table)


@models_app.command("versions")
def versions(name: str, as_json: JsonFlag = False):
    """A name's versions (newest first) and aliases."""
    entry = call(lambda api: api.registry(name))
    if as_json:
        print_json(entry)
        return
    table = Table("version", id_column(), "aliases", "created", "tags")
    for model in entry["versions"]:
        table.add_row(
            str(model["version"]),
            model["id"],
            ", ".join(model.get("aliases") or []),
            str(model.get("created_at") or ""),
            json.dumps(model.get("tags") or {}),
        )
    print_table(console, table)


@models_app.command("alias")
def alias(
    name: str,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS")],
    version: Annotated[int | None, typer.Argument(help="Version to point at")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias")] = False,
):
    """Point NAME@ALIAS at VERSION (set or move it), or remove it with --delete."""
    with client() as api:
        try:
            if delete:
                api.delete_alias(name, alias_name)
                console.print(f"removed {name}@{alias_name}")
                return
            if version is None:
                console.print("[red]error[/red] give a VERSION (or --delete)")
                raise typer.Exit(2)
            api.set_alias(name, alias_name, version)
        except ApiError as error:
            fail(error)
    console.print(f"{name}@{alias_name} -> version {version}")


@models_app.command("tag")
def tag(
    model: str,
    tags: Annotated[list[str] | None, typer.Argument(help="KEY=VALUE pairs")] = None,
    description: Annotated[str | None, typer.Option(help="Replace the description")] = None,
):
    """Replace MODEL's tags (KEY=VALUE ...) and/or its description."""
    pairs = {}
    for item in tags or []:
        key, sep, value = item.partition("=")
        if not sep:
            console.print(f"[red]error[/red] tag {item!r}: expected KEY=VALUE")
            raise typer.Exit(2)
        pairs[key] = value
    updated = call(lambda api: api.update_model(model, pairs if tags else None, description))
    console.print_json(json.dumps({"tags": updated["tags"], "description": updated["description"]}))


@models_app.command("export")
def export(
    model: str,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write")] = None,
    file_format: Annotated[str, typer.Option("--format", help="onnx or npz")] = "onnx",
):
    """Write MODEL as ONNX (default) or nnlib .npz."""
    content = call(lambda api: api.export(model, file_format))
    path = output or Path(f"{model.replace('/', '-').replace('@', '-')}.{file_format}")
    path.write_bytes(content)
    console.print(f"wrote {path} ({len(content)} bytes)")


@models_app.command("upload")
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    name: Annotated[
        str | None, typer.Option(help="Registry name (default: the file's stem)")
    ] = None,
    as_json: JsonFlag = False,
):
    """Import a model file written by nnlib.save (e.g. gradq train --local --save)."""
    model = call(lambda api: api.upload_model(file, name))
    if as_json:
        print_json(model)
        return
    console.print(f"{model['id']}: {model['name']} version {model['version']}")


@models_app.command("delete")
def delete(model: str):
    """Delete MODEL (one version; its aliases go with it)."""
    call(lambda api: api.delete_model(model))
    console.print(f"deleted {model}")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
