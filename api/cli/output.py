"""How CLI output looks on a terminal and off one (pipes, CI logs, files).

On a terminal: rich tables sized to the window, live progress bars. Off one: lines are never cut
or wrapped at 80 columns (rich's default width without a terminal), and progress is a plain line
per epoch (and one at most every 30 s within a long epoch) instead of a bar nobody sees.
"""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

OFF_TERMINAL_WIDTH = 1000  # wide enough for any table row; rows are as wide as their content


def make_console(stderr: bool = False) -> Console:
    """A console for stdout (or stderr) that never cuts lines when it is not a terminal."""
    console = Console(stderr=stderr)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, width=OFF_TERMINAL_WIDTH, soft_wrap=True)


def print_table(console: Console, table: Table) -> None:
    """Print ``table``; off a terminal every cell is printed whole, whatever limits its columns
    set for a terminal window (a ``max_width`` there would cut ``fashion-mnist-mlp`` to
    ``fashion-mnist-m…`` in a pipe, where nobody is short of columns)."""
    if not console.is_terminal:
        for column in table.columns:
            column.max_width, column.no_wrap, column.overflow = None, True, "ignore"
    console.print(table)


def print_error(message: object) -> None:
    """``error <line>`` on stderr for each line of the message (an API's 422 has one per field),
    never wrapped; the message is not read as rich markup. stderr, so a script's
    ``gradq ... --json > out.json`` gets JSON or nothing, and the error still shows."""
    console = make_console(stderr=True)
    for line in str(message).splitlines() or [""]:
        console.print(Text.assemble(("error ", "red"), line), soft_wrap=True)


def print_json(data: object) -> None:
    """Compact JSON on one line: for ``--json`` and for scripts (``jq`` reads it)."""
    typer.echo(json.dumps(data, separators=(",", ":")))
