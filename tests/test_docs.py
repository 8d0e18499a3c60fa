"""README and docs stay true: every setting, CLI command and /v1 operation documented, CI runs
README's test command."""

from __future__ import annotations

import re
from pathlib import Path

from worker.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
API_REFERENCE = (ROOT / "docs" / "api.md").read_text()


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


def cli_commands(command, path: tuple[str, ...] = ()):
    """Every ``gradq`` command as its words, groups that run on their own (``models``) too."""
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield path
        return
    if path and getattr(command, "invoke_without_command", False):
        yield path
    for name, sub in subcommands.items():
        yield from cli_commands(sub, (*path, name))


def test_every_cli_command_is_in_the_readme_cli_table():
    import typer.main

    from api.cli.main import app

    table = README.split("## CLI", 1)[1].split("\n## ", 1)[0]
    commands = [" ".join(words) for words in cli_commands(typer.main.get_command(app))]

    assert len(commands) >= 30
    assert [c for c in commands if f"`gradq {c}" not in table] == []


def test_every_v1_operation_is_in_the_api_reference_table():
    """docs/api.md writes ids as ``{id}`` and models as ``{ref}`` (which covers the
    ``/{name}/versions/{version}`` twin of each model route)."""
    from api.app import create_app

    rows = [line for line in API_REFERENCE.splitlines() if line.startswith("| `")]
    paths = create_app(Settings(redis_url="redis://127.0.0.1:1/0")).openapi()["paths"]
    missing = []
    for path, item in paths.items():
        if not path.startswith("/v1/") or "/versions/{version}" in path:
            continue
        written = re.sub(r"\{(job|dataset|study)_id\}", "{id}", path).replace("{model_id}", "{ref}")
        at_end = re.compile(re.escape(written) + r"(?![\w/{])")
        for method in item:
            if not any(at_end.search(row) and method.upper() in row for row in rows):
                missing.append(f"{method.upper()} {path}")

    assert len(paths) >= 30
    assert missing == []
