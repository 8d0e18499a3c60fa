"""`gradq metrics JOB` prints a job's curves from GET /v1/jobs/{id}/metrics (real server)."""

from __future__ import annotations

import json

import pytest
import redis
from typer.testing import CliRunner

from api.cli.main import app as cli
from tests.api.live import cli_pointed_at_live_api
from tests.api.specs import digits_spec
from worker.fence import Unfenced
from worker.jobs import JobStore
from worker.loss_curve import LossRecorder

KEY = "metrics-key-0123456789"


@pytest.fixture
def job_with_curve(redis_url, tmp_path, monkeypatch):
    with cli_pointed_at_live_api(redis_url, tmp_path / "api.log", "t", KEY, monkeypatch):
        client = redis.Redis.from_url(redis_url)
        job_id = JobStore(client).create(digits_spec(), "t")["id"]
        recorder = LossRecorder(Unfenced(client), job_id, steps_total=4)
        for step in range(1, 5):
            recorder.add(step, float(step))
        recorder.flush()
        yield job_id
        client.close()


@pytest.mark.integration
def test_metrics_prints_the_curve_as_json_and_as_csv(job_with_curve):
    as_json = CliRunner().invoke(cli, ["metrics", job_with_curve])
    as_csv = CliRunner().invoke(cli, ["metrics", job_with_curve, "--csv", "--max-points", "2"])

    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["steps"]["step"] == [1, 2, 3, 4]
    rows = as_csv.stdout.splitlines()
    assert rows[0] == "job_id,series,step,epoch,value"
    assert rows[1:] == [
        f"{job_with_curve},train_loss_step,2,,1.5",
        f"{job_with_curve},train_loss_step,4,,3.5",
    ]


@pytest.mark.integration
def test_metrics_of_an_unknown_job_fails_with_the_api_message(job_with_curve):
    result = CliRunner().invoke(cli, ["metrics", "job_missing"])

    assert result.exit_code != 0 and "job_missing" in result.output
