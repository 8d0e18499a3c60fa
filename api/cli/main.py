"""The ``gradq`` command line: one typer app; each module registers its own commands."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="gradq",
    help="gradq: distributed NumPy training on Celery + Redis, served over REST.",
    no_args_is_help=True,
    add_completion=False,
    # plain help: typer's rich help shows every flag as "--wait <bool>"
    rich_markup_mode=None,
)


@app.callback()
def main() -> None:
    """gradq: distributed NumPy training on Celery + Redis, served over REST."""


def _register() -> None:
    # Each module owns its commands; importing them here keeps main.py free of their logic.
    from api.cli import (
        job_commands,
        keys,
        migrate,
        model_commands,
        remote,
        study,
        train,
        up,
        worker_command,
    )

    modules = (up, worker_command, train, remote, job_commands, model_commands, keys, study)
    for module in (*modules, migrate):
        module.register(app)


_register()

if __name__ == "__main__":
    app()
