"""``gradq train SPEC.json --local``: train a job spec in this process (no Redis, no Celery).

The spec is the same JSON as ``POST /v1/jobs``; distributed-only fields (``shards``,
``checkpoint_every``, ``max_restarts``, ``sync_every``, ``overlap``, ``compression``, ``name``) are
accepted and ignored. Data
comes from ``worker.datasets.load_dataset`` (built-in names or ``{"path": "file.npz"}``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from api.cli.json_file import JsonFileError, read_json_file

# Defaults shared with the API's JobSpec, so a spec trains the same locally and remotely.
DEFAULTS = {
    "loss": "cross_entropy",
    "optimizer": {"type": "adam", "lr": 0.001},
    "batch_size": 64,
    "epochs": 10,
    "seed": 0,
}
_TRAINING_KEYS = {"dataset", "model", "loss", "optimizer", "schedule", "batch_size", "epochs",
                  "seed", "early_stopping"}  # fmt: skip
_IGNORED_KEYS = {
    "name",
    "shards",
    "checkpoint_every",
    "max_restarts",
    "sync_every",
    "overlap",
    "compression",
}


def train_local(spec: dict, on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train ``spec`` in-process; returns the result (test metrics, epochs, parameters, model).

    Raises ValueError naming the field for bad specs (nnlib and the data sets validate theirs).
    """
    import nnlib
    from worker.config import get_settings
    from worker.datasets import load_dataset
    from worker.threads import thread_budget

    if not isinstance(spec, dict):
        raise ValueError(f"spec: expected a JSON object, got {type(spec).__name__}")
    unknown = sorted(set(spec) - _TRAINING_KEYS - _IGNORED_KEYS)
    if unknown:
        raise ValueError(f"spec: unknown field(s) {unknown}")
    for key in ("dataset", "model"):
        if key not in spec:
            raise ValueError(f"spec.{key}: required")
    spec = {**DEFAULTS, **{k: v for k, v in spec.items() if v is not None}}
    seed = spec["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"spec.seed must be an integer >= 0, got {seed!r}")

    data = load_dataset(spec["dataset"], seed=seed)
    # the API's submit-time checks, so a spec that cannot work fails here before training too
    shapes = nnlib.infer_shapes(spec["model"], data.input_shape)
    if shapes.batch_statistics_layers and spec["batch_size"] < 2:
        raise ValueError(
            f"spec.batch_size: batchnorm (model.layers[{shapes.batch_statistics_layers[0]}]) "
            f"needs at least 2 samples per step, got batch_size {spec['batch_size']}"
        )
    nnlib.losses.check_targets(
        nnlib.losses.spec_name(spec["loss"]),
        shapes.output_shape,
        data.num_classes,
        tuple(data.y_train.shape[1:]) if data.num_classes is None else (),
        _target_range(data),
    )
    model = nnlib.build_model(spec["model"], data.input_shape, seed=seed)
    loss = nnlib.losses.from_spec(spec["loss"])
    optimizer = nnlib.optimizers.build(spec["optimizer"], model.parameters())

    def callback(event: dict) -> None:
        if event["type"] == "epoch" and on_epoch is not None:
            on_epoch(event)

    started = time.perf_counter()
    # one process owns the machine here: all cores, split between BLAS and nnlib by model type
    with thread_budget(get_settings(), spec["model"]):
        history = nnlib.fit(
            model, loss, optimizer, data.x_train, data.y_train,
            epochs=spec["epochs"], batch_size=spec["batch_size"], seed=seed,
            x_val=data.x_val if data.x_val is not None and len(data.x_val) else None,
            y_val=data.y_val if data.y_val is not None and len(data.y_val) else None,
            schedule=spec.get("schedule"), early_stopping=spec.get("early_stopping"),
            callback=callback,
        )  # fmt: skip
    result = {
        # nnlib counts epochs from 0; everything a user sees counts from 1
        "epochs": [{**row, "epoch": row["epoch"] + 1} for row in history.epochs],
        "parameters": model.num_parameters(),
        "input_shape": list(data.input_shape),
        "train_seconds": time.perf_counter() - started,
        "stopped_early": history.stopped_early,
        "best_epoch": None if history.best_epoch is None else history.best_epoch + 1,
        "test_loss": None,
        "test_accuracy": None,
    }
    if data.x_test is not None and len(data.x_test):
        test = nnlib.evaluate(model, loss, data.x_test, data.y_test)
        result.update(test_loss=test["loss"], test_accuracy=test["accuracy"])
    result["model"] = model
    result["metadata"] = {
        "dataset": spec["dataset"],  # an import keeps it, as a trained model keeps its job's
        "classes": data.classes,
        "num_classes": data.num_classes,
        "label_column": data.label_column,
        "preprocessing": data.preprocessing,
        "metrics": {"test_loss": result["test_loss"], "test_accuracy": result["test_accuracy"]},
    }
    return result


def _target_range(data) -> tuple[float, float] | None:
    if data.num_classes is not None or not len(data.y_train):
        return None
    return float(data.y_train.min()), float(data.y_train.max())


def _epoch_line(row: dict) -> str:
    parts = [f"epoch {row['epoch'] + 1}", f"train_loss {row['train_loss']:.4f}"]
    if row.get("val_loss") is not None:
        parts.append(f"val_loss {row['val_loss']:.4f}")
    if row.get("val_accuracy") is not None:
        parts.append(f"val_acc {row['val_accuracy']:.4f}")
    parts.append(f"{row['seconds']:.3f}s ({row['samples_per_second']:.0f} samples/s)")
    return "  ".join(parts)


def register(app: typer.Typer) -> None:
    """Add ``gradq train`` to the app."""

    @app.command("train")
    def train(
        spec_file: Annotated[Path, typer.Argument(help="job spec JSON (as for POST /v1/jobs)")],
        local: Annotated[bool, typer.Option("--local", help="train in this process")] = False,
        json_output: Annotated[bool, typer.Option("--json", help="one JSON result")] = False,
        save: Annotated[Path | None, typer.Option(help="write the trained model (.npz)")] = None,
    ) -> None:
        """Train a job spec locally (use `gradq submit` to train on the cluster)."""
        if not local:
            typer.echo(
                "gradq train runs locally only: add --local, or use `gradq submit`.", err=True
            )
            raise typer.Exit(2)
        try:
            spec = read_json_file(spec_file)
        except JsonFileError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

        # With --json, stdout holds only the final object; progress goes to stderr.
        def on_epoch(row: dict) -> None:
            typer.echo(_epoch_line(row), err=json_output)

        try:
            # numpy's overflow/invalid warnings would come out above the one line that says the
            # run diverged; the non-finite loss check (nnlib.fit) is what reports it
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                result = train_local(spec, on_epoch=on_epoch)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except FloatingPointError as exc:  # a diverging run: say so, no traceback
            typer.echo(f"error: training diverged: {exc} (try a smaller lr)", err=True)
            raise typer.Exit(1) from None
        model, metadata = result.pop("model"), result.pop("metadata")
        if save is not None:
            import nnlib

            nnlib.save(save, model, **metadata)
        if json_output:
            typer.echo(json.dumps(result))
        else:
            accuracy = result["test_accuracy"]
            shown = "n/a" if accuracy is None else f"{accuracy:.4f}"
            typer.echo(f"parameters {result['parameters']}  test_accuracy {shown}")
