"""Models and data sets in a real browser: the digit canvas (mouse and finger), image upload,
the pages on a phone, and a data set upload with progress."""

from __future__ import annotations

import pytest

from tests.harness import wait_until
from tests.ui.browser import chromium_available, screenshot
from tests.ui.in_browser.helpers import KEY_A, draw, log_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed"),
]


def test_drawing_a_digit_on_the_canvas_predicts_it(page, stack, live_job):
    record = stack.wait_for_status(KEY_A, live_job, ("succeeded",))
    log_in(page, KEY_A)
    page.goto(f"/ui/models/{record['model_id']}")
    prediction = page.get_by_test_id("prediction")

    draw(page, [[(0.5, 0.1), (0.5, 0.9)]])  # a one: one vertical stroke
    one = wait_until(prediction.text_content, 20, "a prediction for the one")
    page.get_by_test_id("clear-canvas").click()
    ring = [(0.5, 0.1), (0.75, 0.25), (0.78, 0.5), (0.75, 0.75), (0.5, 0.9)]
    ring += [(0.25, 0.75), (0.22, 0.5), (0.25, 0.25), (0.5, 0.1)]
    draw(page, [ring])  # a zero: one closed loop
    zero = wait_until(prediction.text_content, 20, "a prediction for the zero")
    screenshot(page, "model-canvas")

    assert (one, zero) == ("1", "0")


def test_an_image_uploaded_on_the_model_page_is_predicted(page, stack, live_job, tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    record = stack.wait_for_status(KEY_A, live_job, ("succeeded",))
    digits = load_digits()
    picture = tmp_path / "eight.png"  # white ink on black, like the canvas, 8x larger
    pixels = (digits.images[-3] * 255 / 16).astype("uint8")
    Image.fromarray(pixels).resize((64, 64), Image.NEAREST).save(picture)
    log_in(page, KEY_A)
    page.goto(f"/ui/models/{record['model_id']}")

    page.set_input_files("#image-file", str(picture))
    predicted = wait_until(page.get_by_test_id("prediction").text_content, 20, "a prediction")

    assert predicted == str(digits.target[-3]) == "8"
    assert page.locator("#class-bars .class-bar.best .label").text_content() == "8"


def test_on_a_phone_the_pages_fit_and_a_finger_draws_a_digit(chromium, stack, live_job):
    record = stack.wait_for_status(KEY_A, live_job, ("succeeded",))
    phone = chromium.new_context(
        base_url=stack.url, viewport={"width": 400, "height": 800}, has_touch=True, is_mobile=True
    )
    page = phone.new_page()
    log_in(page, KEY_A)
    widths = {}
    for path in ("/ui/jobs", f"/ui/jobs/{live_job}", f"/ui/models/{record['model_id']}"):
        page.goto(path)
        widths[path] = page.evaluate("document.documentElement.scrollWidth")
    canvas = page.get_by_test_id("digit-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    touch = phone.new_cdp_session(page)  # real touch input, as a finger sends it

    def finger(kind: str, y: float | None = None) -> None:
        points = [] if y is None else [{"x": box["x"] + box["width"] / 2, "y": box["y"] + y}]
        touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    finger("touchStart", 0.1 * box["height"])
    for i in range(1, 21):  # a one: straight down the middle
        finger("touchMove", (0.1 + 0.8 * i / 20) * box["height"])
    finger("touchEnd")
    predicted = wait_until(page.get_by_test_id("prediction").text_content, 20, "a prediction")
    screenshot(page, "phone-model-canvas")
    phone.close()

    assert predicted == "1"
    assert widths == dict.fromkeys(widths, 400), widths  # nothing wider than the phone


def test_data_set_upload_shows_progress_then_the_details(page, tmp_path):
    log_in(page, KEY_A)
    table = tmp_path / "table.csv"
    table.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(200)))
    page.goto("/ui/datasets")
    page.set_input_files("#upload-file", str(table))
    page.fill('input[name="label_column"]', "x" * 201)  # over the form field's 200 characters
    page.click('#upload-form button[type="submit"]')
    status = page.locator("#upload-status.error")
    status.wait_for()
    refused = status.text_content()
    bar_hidden_after_refusal = page.locator("#upload-progress").is_hidden()

    page.set_input_files("#upload-file", str(table))
    page.fill('input[name="label_column"]', "label")
    page.click('#upload-form button[type="submit"]')
    page.wait_for_url("**/ui/datasets/ds_*")
    screenshot(page, "dataset")
    page.goto("/ui/datasets")
    screenshot(page, "datasets")

    # the field as the user knows it, the way the spec editor and the CLI print it
    assert refused.startswith("HTTP 422: label_column: "), refused
    assert bar_hidden_after_refusal  # a full bar after a refusal read as "stored"
    assert page.get_by_test_id("dataset-row").count() == 1
