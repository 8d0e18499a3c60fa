"""Playwright on Debian's chromium (headless), and where the page screenshots go.

Playwright's own browser download is not available here, so the launch points at
``/usr/bin/chromium`` (``GRADQ_CHROMIUM`` overrides); the tests skip when it is missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.harness import REPO_ROOT

CHROMIUM = os.environ.get("GRADQ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# CI keeps this folder as the test artifact; people look at the pictures after a run. Not under
# .state/artifacts: that is `gradq up`'s artifact store, whose collector removes unknown files.
SHOTS_ROOT = Path(os.environ.get("GRADQ_TEST_ARTIFACTS", REPO_ROOT / ".state" / "test-artifacts"))
ARTIFACTS = SHOTS_ROOT / "ui"


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)


def screenshot(page, name: str) -> Path:
    """A full-page PNG of what the browser shows now, saved as a test artifact.

    CSS transitions are finished first: a bar caught mid-way (98.8% drawn as a sliver) made
    the pictures disagree with the numbers next to them."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    return path
