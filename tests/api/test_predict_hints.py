"""Predict errors a new user meets first say what to send instead: the concrete batch shape, a
label column left in the rows, an image sent as the raw body (the new-user trial)."""

from __future__ import annotations

import base64

import pytest

from tests.api.models_fixture import raw_digits, store_digits_model

# a 1x1 grey PNG: what `curl --data-binary @x.png` sends
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def predict_url(redis_client) -> str:
    return f"/v1/models/{store_digits_model(redis_client, 'alice')['id']}/predict"


def test_the_shape_error_gives_the_batch_shape_not_a_placeholder(alice, predict_url):
    response = alice.post(predict_url, json={"inputs": [[0] * 5] * 3})

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "or a batch of them [n, 64]" in detail and "..." not in detail


def test_rows_one_value_too_wide_are_told_the_label_column_may_need_removing(alice, predict_url):
    rows, _ = raw_digits(3)
    with_label = [[*row, 7] for row in rows.tolist()]

    response = alice.post(predict_url, json={"inputs": with_label})

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("inputs: got shape [3, 65]")
    assert "label column, remove it" in detail


def test_other_wrong_widths_get_no_label_column_hint(alice, predict_url):
    response = alice.post(predict_url, json={"inputs": [[0] * 66] * 2})
    assert response.status_code == 422 and "label column" not in response.json()["detail"]


@pytest.mark.parametrize(
    ("content_type", "status"),
    [("image/png", 415), ("application/octet-stream", 422), ("application/json", 422)],
)
def test_a_png_sent_as_the_raw_body_is_told_to_use_a_multipart_file_field(
    alice, predict_url, content_type, status
):
    alice.post(predict_url, json={"inputs": [0] * 64})  # cached: the fast path sees it first

    response = alice.post(predict_url, content=PNG, headers={"Content-Type": content_type})

    assert response.status_code == status
    detail = response.json()["detail"]
    assert detail.startswith("body: ") and "-F file=@x.png" in detail


def test_the_same_png_as_a_multipart_file_is_predicted(alice, predict_url):
    response = alice.post(predict_url, files={"file": ("x.png", PNG, "image/png")})
    assert response.status_code == 200, response.text
