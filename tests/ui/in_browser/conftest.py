"""One real stack (private Redis, a Celery worker, uvicorn) and one headless chromium for every
browser test module in this package; each test gets a fresh browser context (no cookies)."""

from __future__ import annotations

import pytest

from tests.ui.browser import launch
from tests.ui.in_browser.helpers import KEY_A, KEY_B, digits_spec
from tests.ui.live_stack import LiveStack


@pytest.fixture(scope="package")
def stack(redis_server, tmp_path_factory):
    redis_server.client.flushall()
    live = LiveStack(redis_server.url, tmp_path_factory.mktemp("ui"), f"alice:{KEY_A},bob:{KEY_B}")
    yield live
    live.stop()


@pytest.fixture(scope="package")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, stack):
    context = chromium.new_context(base_url=stack.url, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture(scope="package")
def live_job(stack) -> str:
    """A digits job long enough (~10 s) to be watched while it runs; later a trained model."""
    with stack.api(KEY_A) as api:
        return api.post("/v1/jobs", json=digits_spec("digits-live", 60)).json()["id"]


@pytest.fixture(scope="package")
def short_job(stack) -> str:
    with stack.api(KEY_A) as api:
        job_id = api.post("/v1/jobs", json=digits_spec("digits-short", 5)).json()["id"]
    stack.wait_for_status(KEY_A, job_id, ("succeeded",))
    return job_id
