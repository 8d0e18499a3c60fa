"""How CLI output looks on a terminal and off one (pipes, CI logs, files).

On a terminal: rich tables sized to the window, live progress bars. Off one: lines are never cut
or wrapped at 80 columns (rich's default width without a terminal), and progress is a plain line
per epoch instead of a bar nobody sees.
"""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

OFF_TERMINAL_WIDTH = 1000  # wide enough for any table row; rows are as wide as their content


def make_console() -> Console:
    """A console for stdout that never cuts lines when stdout is not a terminal."""
    console = Console()
    if console.is_terminal:
        return console
    return Console(width=OFF_TERMINAL_WIDTH, soft_wrap=True)


def print_table(console: Console, table: Table) -> None:
    """Print ``table``; off a terminal every cell is printed whole, whatever limits its columns
    set for a terminal window (a ``max_width`` there would cut ``fashion-mnist-mlp`` to
    ``fashion-mnist-m…`` in a pipe, where nobody is short of columns)."""
    if not console.is_terminal:
        for column in table.columns:
            column.max_width, column.no_wrap, column.overflow = None, True, "ignore"
    console.print(table)


def print_error(console: Console, message: object) -> None:
    """``error <line>`` for each line of the message (an API's 422 has one per field), never
    wrapped; the message is not read as rich markup."""
    for line in str(message).splitlines() or [""]:
        console.print(Text.assemble(("error ", "red"), line), soft_wrap=True)


def print_json(data: object) -> None:
    """Compact JSON on one line: for ``--json`` and for scripts (``jq`` reads it)."""
    typer.echo(json.dumps(data, separators=(",", ":")))
