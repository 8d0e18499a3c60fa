"""Issue 10's prediction images through the route: variants of the same picture get its digit.

The reference is scikit-learn's first "7" drawn 64x64 as dark ink on white, read by the digits
MLP of ``examples/digits_mlp.json``; each variant changes one thing a real client changes.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from api import predict_inputs
from tests.api.drawings import (
    WHITE,
    alpha_only,
    encoded,
    in_mode,
    picture,
    png_header_only,
    with_orientation,
)
from tests.api.models_fixture import store_example_model

GREY_PAPER, OFF_WHITE = (225, 222, 215), (240, 236, 224)


@pytest.fixture
def predict_url(redis_client) -> str:
    return f"/v1/models/{store_example_model(redis_client, 'alice')['id']}/predict"


def read(client, url: str, content: bytes):
    response = client.post(url, files={"file": ("picture", content, "application/octet-stream")})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["predictions"][0], max(body["probabilities"][0])


def test_the_reference_seven_reads_as_seven_with_certainty(alice, predict_url):
    label, probability = read(alice, predict_url, encoded(picture(7)))
    assert label == 7 and probability > 0.99


@pytest.mark.parametrize(
    ("variant", "content"),
    [
        ("ink only in the alpha channel", lambda: encoded(alpha_only(picture(7)))),
        ("JPEG stored rotated, EXIF orientation 6", lambda: with_orientation(picture(7), 6)),
        ("16-bit grey PNG (values x257)", lambda: encoded(in_mode(picture(7), "I;16"))),
    ],
)
def test_variants_of_the_reference_seven_read_as_seven(alice, predict_url, variant, content):
    label, _ = read(alice, predict_url, content())
    assert label == 7, variant


@pytest.mark.parametrize("paper", [GREY_PAPER, OFF_WHITE], ids=["grey", "off-white"])
@pytest.mark.parametrize("digit", [0, 3])
def test_digits_on_coloured_paper_at_200px_get_their_digit(alice, predict_url, paper, digit):
    label, _ = read(alice, predict_url, encoded(picture(digit, 200, paper=paper)))
    assert label == digit


def test_a_decompression_bomb_is_refused_from_its_header_naming_file(alice, predict_url):
    # 15000 x 15000 = 225 M pixels: the 252 KB white PNG used to answer 500
    response = alice.post(predict_url, files={"file": ("b.png", png_header_only(15000, 15000))})
    assert response.status_code == 413
    assert response.json()["detail"].startswith("file:")


def test_an_image_over_the_pixel_setting_is_413_with_the_numbers(alice, app, predict_url):
    app.state.settings = app.state.settings.model_copy(update={"max_image_pixels": 4_000_000})
    response = alice.post(predict_url, files={"file": ("b.png", png_header_only(2001, 2000))})
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert detail.startswith("file:") and "4002000" in detail and "4000000" in detail
    at_the_limit = encoded(picture(7, 2000))
    assert read(alice, predict_url, at_the_limit)[0] == 7


def test_images_are_decoded_off_the_event_loop(alice, predict_url, monkeypatch):
    threads_with_a_loop = []
    decode = predict_inputs.image_to_sample

    def recording(*args):
        try:
            asyncio.get_running_loop()
            threads_with_a_loop.append(True)
        except RuntimeError:
            threads_with_a_loop.append(False)
        return decode(*args)

    monkeypatch.setattr(predict_inputs, "image_to_sample", recording)
    assert read(alice, predict_url, encoded(picture(7)))[0] == 7
    assert threads_with_a_loop == [False]


@pytest.mark.parametrize(
    "content",
    [b"", b"GIF89a" + b"\x00" * 20, encoded(picture(7))[:200], encoded(picture(7), "BMP")],
    ids=["empty", "gif", "truncated png", "bmp"],
)
def test_unreadable_or_other_formats_are_422_naming_file(alice, predict_url, content):
    response = alice.post(predict_url, files={"file": ("x", content)})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("file:")


def test_a_blank_page_is_a_prediction_not_an_error(alice, predict_url):
    blank = encoded(picture(7, paper=WHITE, ink=WHITE))
    response = alice.post(predict_url, files={"file": ("x", blank)})
    assert response.status_code == 200
    assert np.isclose(sum(response.json()["probabilities"][0]), 1.0)
