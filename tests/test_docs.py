"""README stays true: every setting documented, CI runs README's test command."""

from __future__ import annotations

import re
from pathlib import Path

from worker.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table():
    documented = set(re.findall(r"^\| `(GRADQ_[A-Z0-9_]+)` \|", README, flags=re.M))
    expected = {f"GRADQ_{name.upper()}" for name in Settings.model_fields}

    assert documented == expected


def test_ci_runs_exactly_the_readme_test_command():
    quick_start = README.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick_start.strip().splitlines()]
    ci = (ROOT / ".ci" / "run").read_text()

    assert len(commands) == 2, "the quick start is exactly two commands"
    assert f"exec {commands[1]}\n" in ci
