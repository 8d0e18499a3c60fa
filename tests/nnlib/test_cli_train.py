"""``gradq train SPEC.json --local [--json]`` on a tiny .npz, in-process (no Redis, no Celery)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import nnlib
from api.cli import train
from tests.harness import REPO_ROOT


@pytest.fixture
def cli() -> typer.Typer:
    # A group app with only `train`, so the command is addressed by name as in `gradq train`.
    app = typer.Typer()
    app.callback()(lambda: None)
    train.register(app)
    return app


@pytest.fixture
def spec_file(tmp_path):
    rng = np.random.default_rng(0)

    def blobs(n):
        y = rng.integers(0, 3, size=n)
        return (rng.normal(size=(n, 4)) + 3.0 * np.eye(3, 4)[y]).astype(np.float32), y

    x_train, y_train = blobs(150)
    x_test, y_test = blobs(60)
    data = tmp_path / "tiny.npz"
    np.savez(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    spec = {
        "name": "tiny",
        "dataset": {"path": str(data), "validation_split": 0.2},
        "model": {
            "layers": [
                {"type": "dense", "units": 8, "activation": "relu"},
                {"type": "dense", "units": 3},
            ]
        },  # fmt: skip
        "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9},
        "batch_size": 16,
        "epochs": 4,
        "shards": 2,
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def test_json_output_is_one_object_with_test_metrics_epochs_and_parameter_count(cli, spec_file):
    result = CliRunner().invoke(cli, ["train", str(spec_file), "--local", "--json"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip())
    assert report["parameters"] == 4 * 8 + 8 + 8 * 3 + 3
    assert report["test_accuracy"] >= 0.8 and report["test_loss"] > 0
    assert [row["epoch"] for row in report["epochs"]] == [1, 2, 3, 4]  # 1-based, as everywhere
    for row in report["epochs"]:
        assert {"train_loss", "val_loss", "val_accuracy", "seconds", "samples_per_second"} <= set(
            row
        )


def test_plain_output_prints_one_line_per_epoch_and_saves_a_loadable_model(
    cli, spec_file, tmp_path
):
    saved = tmp_path / "model.npz"
    result = CliRunner().invoke(cli, ["train", str(spec_file), "--local", "--save", str(saved)])

    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert [line.split()[:2] for line in lines[:4]] == [["epoch", str(i)] for i in range(1, 5)]
    assert "test_accuracy" in lines[-1]
    model, metadata = nnlib.load(saved)
    assert model.input_shape == (4,) and metadata["num_classes"] == 3
    assert metadata["dataset"]["path"].endswith("tiny.npz")  # an upload keeps its data set


@pytest.mark.parametrize(
    "change,message",
    [
        ({"optimizer": {"type": "sgd", "lr": -1}}, "lr must be > 0, got -1"),
        ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
        ({"model": {"layers": [{"type": "dense", "units": 0}]}}, "units"),
        ({"learning_rate": 0.1}, "learning_rate"),
        ({"loss": "mse"}, "loss: mse needs regression targets, but the data set has 3 classes"),
        ({"loss": "binary_cross_entropy"}, "loss: binary_cross_entropy needs 2 classes"),
        (
            {
                "model": {"layers": [{"type": "batchnorm"}, {"type": "dense", "units": 3}]},
                "batch_size": 1,
            },
            "batch_size: batchnorm (model.layers[0]) needs at least 2 samples",
        ),  # fmt: skip
    ],
)
def test_bad_specs_exit_2_naming_the_field(cli, spec_file, change, message):
    spec = {**json.loads(spec_file.read_text()), **change}
    spec_file.write_text(json.dumps(spec))

    result = CliRunner().invoke(cli, ["train", str(spec_file), "--local", "--json"])

    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["plain", "json"])
def test_a_diverging_run_exits_1_with_one_line_naming_the_cause(spec_file, json_flag):
    spec = {**json.loads(spec_file.read_text()), "optimizer": {"type": "sgd", "lr": 1e30}}
    spec_file.write_text(json.dumps(spec))

    # the real process: numpy's RuntimeWarnings (overflow, invalid value) print there, where
    # pytest's in-process capture would hide them
    result = subprocess.run(
        [sys.executable, "-m", "api.cli.main", "train", str(spec_file), "--local", *json_flag],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: training diverged: training loss is")


def test_a_loss_object_with_options_trains_locally_as_on_the_cluster(cli, spec_file):
    spec = json.loads(spec_file.read_text())
    spec["loss"] = {"type": "cross_entropy", "label_smoothing": 0.1}
    spec_file.write_text(json.dumps(spec))

    result = CliRunner().invoke(cli, ["train", str(spec_file), "--local", "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip())["test_accuracy"] >= 0.8


def test_without_local_the_command_points_to_submit(cli, spec_file):
    result = CliRunner().invoke(cli, ["train", str(spec_file)])

    assert result.exit_code == 2 and "gradq submit" in result.stderr


@pytest.mark.parametrize("name", ["digits_mlp", "fashion_mnist_mlp", "fashion_mnist_cnn"])
def test_example_specs_build_against_their_data_shapes(name):
    spec = json.loads((Path(__file__).parents[2] / "examples" / f"{name}.json").read_text())
    input_shape = (64,) if spec["dataset"]["name"] == "digits" else (1, 28, 28)

    model = nnlib.build_model(spec["model"], input_shape, seed=spec["seed"])
    nnlib.optimizers.build(spec["optimizer"], model.parameters())

    assert set(spec) <= train._TRAINING_KEYS | train._IGNORED_KEYS
    assert model.output_shape == (10,)
