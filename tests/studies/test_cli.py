"""``gradq study create --wait`` and ``gradq study show`` against the real API and workers."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from api.cli.main import app as cli
from tests.studies.conftest import KEY_A, digits_study

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_env(live_api, monkeypatch):
    from worker.config import get_settings

    monkeypatch.setenv("GRADQ_API_URL", live_api.url)
    monkeypatch.setenv("GRADQ_API_KEY", KEY_A)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_study_create_waits_with_a_table_of_trials_and_show_prints_it(cli_env, workers, tmp_path):
    workers(concurrency=2)
    (tmp_path / "study.json").write_text(json.dumps(digits_study(max_trials=3)))
    runner = CliRunner()

    created = runner.invoke(cli, ["study", "create", str(tmp_path / "study.json"), "--wait"])

    assert created.exit_code == 0, created.output
    study_id = re.search(r"created (study_[0-9a-f]+)", created.output).group(1)
    assert "succeeded" in created.output and "best: trial" in created.output
    shown = runner.invoke(cli, ["study", "show", study_id])
    assert shown.exit_code == 0
    assert shown.output.count("complete") == 3 and shown.output.count("job_") == 3


def test_study_create_reports_a_refused_space(cli_env, tmp_path):
    space = {"optimizer.momentum": {"type": "float", "low": 0.1, "high": 0.9}}
    (tmp_path / "bad.json").write_text(json.dumps(digits_study(space=space)))

    refused = CliRunner().invoke(cli, ["study", "create", str(tmp_path / "bad.json")])

    assert refused.exit_code == 1
    assert "422" in refused.output and "optimizer.momentum" in refused.output
