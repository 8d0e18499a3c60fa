"""POST /v1/datasets with hostile or awkward files: 413 with the numbers, 422 naming line+column."""

from __future__ import annotations

import numpy as np
import pytest

from tests.api.conftest import KEY_A
from tests.api.test_datasets import upload
from tests.datasets.test_upload_limits import _bomb
from tests.harness import npz_bytes
from worker.config import Settings

QUOTA = 40_000


@pytest.fixture
def settings(redis_url, tmp_path) -> Settings:
    return Settings(
        redis_url=redis_url,
        api_keys=f"alice:{KEY_A}",
        max_dataset_bytes=256 * 1024,
        max_dataset_columns=50,
        max_storage_bytes_per_tenant=QUOTA,
        data_dir=tmp_path / "data",
    )


def test_a_csv_with_cr_line_endings_is_stored_with_its_four_rows(alice):
    content = b"a,b,label\r1,2,0\r3,4,1\r5,6,0\r7,8,1\r"

    response = upload(alice, content, "cr.csv")

    assert response.status_code == 201, response.text
    assert response.json()["shapes"] == {"x_train": [4, 2], "y_train": [4]}
    assert response.json()["num_classes"] == 2


def test_a_csv_parse_failure_is_422_naming_line_and_column(alice):
    response = upload(alice, b"a,b,label\r1,2,0\r3,x,1\r", "bad.csv")

    assert response.status_code == 422
    assert response.json()["detail"] == (
        "line 3, column 2 ('b'): 'x' is not a number (only the label column may hold text: "
        "the last, 'label', unless the label_column field names another)"
    )


def test_a_csv_over_the_column_limit_is_413_with_the_numbers(alice):
    header = ",".join(f"c{i}" for i in range(51)) + "\n"

    response = upload(alice, (header + ",".join(["1"] * 51) + "\n").encode(), "wide.csv")

    assert response.status_code == 413
    assert (
        "51 columns, over the limit of 50 (GRADQ_MAX_DATASET_COLUMNS)" in response.json()["detail"]
    )


def test_an_archive_expanding_over_the_limit_is_413_and_stores_nothing(alice):
    content = _bomb(rows=64 * 1024, columns=128)  # 64 MB of zeros

    response = upload(alice, content, "bomb.npz")

    assert response.status_code == 413
    assert f"over the limit of {256 * 1024} bytes" in response.json()["detail"]
    assert alice.get("/v1/datasets").json()["datasets"] == []


def test_the_storage_quota_is_413_with_the_numbers_until_a_set_is_deleted(alice):
    x = np.zeros((2000, 10), np.uint8)  # 20,000 + 16,000 bytes stored
    content = npz_bytes(x_train=x, y_train=np.arange(2000) % 2)
    first = upload(alice, content)
    assert first.status_code == 201 and first.json()["size_bytes"] == 36_000

    refused = upload(alice, content)

    assert refused.status_code == 413
    detail = refused.json()["detail"]
    assert f"needs 36000 bytes; tenant alice already stores 36000 of its {QUOTA} bytes" in detail
    assert alice.delete(f"/v1/datasets/{first.json()['id']}").status_code == 204
    assert upload(alice, content).status_code == 201


def test_the_quota_refuses_an_archive_before_it_is_decompressed(alice):
    content = _bomb(rows=5 * 1024, columns=1)  # fits the 256 kB limit, not a 40 kB quota

    response = upload(alice, content, "bomb.npz")

    assert response.status_code == 413
    assert f"needs {5 * 1024 * (4 + 8)} bytes" in response.json()["detail"]


@pytest.mark.slow
def test_the_issues_480_mb_archive_costs_its_real_size_against_the_quota(redis_url, tmp_path):
    import tracemalloc

    from fastapi.testclient import TestClient

    from api.app import create_app

    content = _bomb(rows=480 * 1024 * 1024 // 8 // 128, columns=128)  # 480 MB of float64 zeros
    settings = Settings(
        redis_url=redis_url,
        api_keys=f"alice:{KEY_A}",
        max_storage_bytes_per_tenant=200 * 2**20,  # GRADQ_MAX_DATASET_BYTES stays 512 MiB
        data_dir=tmp_path / "data",
    )
    stored = 491_520 * 128 * 4 + 491_520 * 8  # float32 features, int64 labels: 255,590,400 B

    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {KEY_A}"}) as client:
        tracemalloc.start()
        try:
            response = upload(client, content, "zeros.npz")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert response.status_code == 413
    assert f"needs {stored} bytes" in response.json()["detail"]
    assert f"of its {200 * 2**20} bytes" in response.json()["detail"]
    assert peak < 16 * 2**20  # the request and its copies; decompressed it would be 480 MB
