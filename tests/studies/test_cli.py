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


def test_study_create_waits_off_a_terminal_with_trial_lines_the_table_then_the_best(
    cli_env, workers, alice, tmp_path
):
    workers(concurrency=2)
    (tmp_path / "study.json").write_text(json.dumps(digits_study(max_trials=3)))
    runner = CliRunner()  # not a terminal, as in a pipe or a CI log

    created = runner.invoke(cli, ["study", "create", str(tmp_path / "study.json"), "--wait"])

    assert created.exit_code == 0, created.output
    lines = created.output.splitlines()
    study_id = re.fullmatch(r"created (study_[0-9a-f]+) \(\w+\)", lines[0]).group(1)
    top = next(n for n, line in enumerate(lines) if line.startswith("┏"))
    events = lines[1:top]
    for trial in range(3):  # each trial's events came as lines, before the table
        assert any(re.match(rf"trial {trial} running epochs \d", line) for line in events)
        assert any(line.startswith(f"trial {trial} complete epochs 3 value ") for line in events)
    assert "succeeded" in "".join(lines[top - 2 : top])  # the table's title
    best = alice.study(study_id)["best_trial"]
    params = ", ".join(
        f"{path}={value:.4g}" if isinstance(value, float) else f"{path}={value}"
        for path, value in best["params"].items()
    )
    assert lines[-2].startswith("└") and lines[-2].endswith("┘")
    assert lines[-1] == f"best: trial {best['trial']} value {best['value']:.4f} params {params}"
    shown = runner.invoke(cli, ["study", "show", study_id])
    assert shown.exit_code == 0
    assert shown.output.count("complete") == 3 and shown.output.count("job_") == 3


def test_study_create_reports_a_refused_space(cli_env, tmp_path):
    space = {"optimizer.momentum": {"type": "float", "low": 0.1, "high": 0.9}}
    (tmp_path / "bad.json").write_text(json.dumps(digits_study(space=space)))

    refused = CliRunner().invoke(cli, ["study", "create", str(tmp_path / "bad.json")])

    assert refused.exit_code == 1
    assert "422" in refused.output and "optimizer.momentum" in refused.output
