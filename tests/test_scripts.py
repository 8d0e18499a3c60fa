"""scripts/quickstart.sh hands its arguments to `gradq up`, never to the sourced bootstrap.

The real scripts run with a stand-in virtual environment whose ``python`` and ``gradq`` only
record their arguments, so nothing is installed or started.
"""

from __future__ import annotations

import os
import subprocess

from tests.harness import REPO_ROOT

RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
"""


def fake_venv(tmp_path):
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "gradq"):
        (bin_dir / name).write_text(RECORDER.format(log=log))
        (bin_dir / name).chmod(0o755)
    return tmp_path / "venv", log


def test_quickstart_passes_every_argument_to_gradq_up_and_installs_no_extra(tmp_path):
    venv, log = fake_venv(tmp_path)
    env = dict(os.environ, GRADQ_VENV=str(venv))

    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "quickstart.sh"), "--no-demo", "--port", "8123"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert f"python -m pip install -q -e {REPO_ROOT}" in calls  # no "[--no-demo]" extra
    assert calls[-1] == "gradq up --no-demo --port 8123"
    assert f"installing gradq and its dependencies into {venv}" in result.stdout
