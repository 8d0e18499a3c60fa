"""The vendored browser assets: each ships its licence, and README.md says what and which version.

Licences gradq (MIT) may redistribute unchanged with attribution are the permissive ones below;
a vendored file of another licence, or one whose version drifted from the table, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

VENDOR = Path(__file__).resolve().parents[2] / "api" / "ui" / "static" / "vendor"
# the table's licence name -> words its LICENSE file must contain
PERMISSIVE = {"MIT": "Permission is hereby granted", "Apache-2.0": "Apache License"}


def readme_rows() -> dict[str, dict[str, str]]:
    """``{folder: {"package", "version", "licence"}}`` from vendor/README.md's table."""
    rows = {}
    for line in (VENDOR / "README.md").read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].endswith("/") and not cells[0].startswith("-"):
            licence = cells[3].split()[0]
            rows[cells[0].rstrip("/")] = {
                "package": cells[1],
                "version": cells[2],
                "licence": licence,
            }
    return rows


FOLDERS = sorted(p.name for p in VENDOR.iterdir() if p.is_dir())


def test_every_vendored_folder_is_in_the_readme_table_and_nothing_else():
    assert sorted(readme_rows()) == FOLDERS


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_vendored_folder_ships_its_permissive_licence(folder):
    row = readme_rows()[folder]
    licence = (VENDOR / folder / "LICENSE").read_text()

    assert row["licence"] in PERMISSIVE, row
    assert PERMISSIVE[row["licence"]] in licence


@pytest.mark.parametrize("folder", FOLDERS)
def test_the_vendored_script_is_the_version_the_readme_names(folder):
    version = readme_rows()[folder]["version"]
    scripts = list((VENDOR / folder).glob("*.js"))

    assert scripts, f"{folder}: no script"
    for script in scripts:  # uPlot's banner says (v1.6.32); Swagger UI's bundle has "5.35.0"
        assert re.search(rf"\bv?{re.escape(version)}\b", script.read_text()), script.name
