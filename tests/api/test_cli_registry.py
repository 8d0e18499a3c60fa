"""The CLI end to end (real Redis, Celery worker, uvicorn): a model trained with
``gradq train --local --save`` is uploaded, aliased, tagged, exported and served; a cancelled
job is resumed, its logs read, and the job deleted."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
from typer.testing import CliRunner

from api.cli.main import app as cli
from api.client import GradqClient
from tests.api.live import cli_pointed_at_live_api
from tests.harness import wait_until
from worker.storage import artifact_store
from worker.storage.checkpoints import checkpoint_keys

pytestmark = pytest.mark.integration
KEY = "cli-key-0123456789"
SPEC = {
    "name": "blobs-mlp",
    "dataset": {"name": "blobs"},
    "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"},
                         {"type": "dense", "units": 3}]},
    "optimizer": {"type": "adam", "lr": 0.01},
    "batch_size": 16,
    "epochs": 3,
}  # fmt: skip


@pytest.fixture
def cli_env(redis_url, tmp_path, monkeypatch):
    with cli_pointed_at_live_api(
        redis_url, tmp_path / "api.log", "cli", KEY, monkeypatch
    ) as server:
        yield server


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_upload_alias_tag_export_and_predict_a_locally_trained_model(cli_env, tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps(SPEC))
    saved = tmp_path / "blobs.npz"
    run("train", str(tmp_path / "spec.json"), "--local", "--save", str(saved))
    assert "version 1" in run("models", "upload", str(saved))
    assert "version 2" in run("models", "upload", str(saved), "--name", "blobs")
    run("models", "alias", "blobs", "prod", "2")
    run("models", "tag", "blobs@prod", "team=ml", "--description", "imported")
    versions = run("models", "versions", "blobs")
    assert "prod" in versions and "team" in versions
    np.save(tmp_path / "x.npy", np.zeros((2, 2)))
    assert "predictions" in run("predict", "blobs@prod", str(tmp_path / "x.npy"), "--json")
    run("models", "export", "blobs/versions/2", "-o", str(tmp_path / "m.onnx"))
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    assert session.run(["outputs"], {"input": np.zeros((2, 2), np.float32)})[0].shape == (2, 3)
    run("models", "alias", "blobs", "prod", "--delete")
    run("models", "delete", "blobs/versions/1")
    listing = run("models")
    assert "blobs" in listing and listing.count("mdl_") == 1


def test_resume_a_cancelled_job_read_its_logs_and_delete_it(
    cli_env, start_worker, redis_client, tmp_path
):
    start_worker(concurrency=1)
    api = GradqClient(cli_env.url, KEY)
    job = api.submit(SPEC | {"epochs": 1000, "checkpoint_every": 5})
    artifacts = artifact_store(redis_client)
    wait_until(lambda: checkpoint_keys(artifacts, job["id"]), 60, "a first checkpoint")
    run("cancel", job["id"])
    wait_until(lambda: api.job(job["id"])["status"] == "cancelled", 60, "the cancel")

    assert "queued" in run("jobs", "resume", job["id"], "--epochs", "1000")
    wait_until(lambda: api.job(job["id"])["status"] == "running", 60, "the resumed job to run")
    run("cancel", job["id"])
    wait_until(lambda: api.job(job["id"])["status"] == "cancelled", 60, "the second cancel")
    logs = run("logs", job["id"])
    assert "weights from the checkpoint at step" in logs and "shard 0" in logs
    assert "stopping: cancelled" in logs
    followed = run("logs", job["id"], "-f")  # a finished job: every line, then the end
    assert followed.count("\n") == logs.count("\n")
    run("jobs", "delete", job["id"])
    assert job["id"] not in run("jobs")
