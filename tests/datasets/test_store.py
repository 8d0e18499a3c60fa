"""DatasetStore: uploads round-trip through a real (private) Redis in bounded chunks."""

from __future__ import annotations

import numpy as np
import pytest
import redis as redis_lib

from tests.harness import npz_bytes
from worker.datasets import DatasetError, DatasetStore, load_dataset, validate_upload
from worker.datasets.store import PREFIX, TENANT_INDEX, RedisChunkedBlobs


def _upload(n=300, side=28, seed=0):
    rng = np.random.default_rng(seed)
    content = npz_bytes(
        x_train=rng.integers(0, 256, (n, side, side), dtype=np.uint8),
        y_train=np.arange(n) % 10,
        x_test=rng.integers(0, 256, (20, side, side), dtype=np.uint8),
        y_test=np.arange(20) % 10,
    )
    return validate_upload("faces.npz", content, max_bytes=1 << 30)


def test_put_then_arrays_round_trips_every_array_bit_for_bit(redis_client):
    uploaded = _upload()
    store = DatasetStore(redis_client)

    info = store.put("acme", uploaded, name="my faces")
    arrays = store.arrays(info["id"])

    assert info["id"].startswith("ds_") and info["name"] == "my faces"
    assert info["tenant"] == "acme" and info["filename"] == "faces.npz"
    assert info["sha256"] == uploaded.sha256 and info["num_classes"] == 10
    assert info["classes"] == [str(k) for k in range(10)]
    assert info["input_shape"] == [1, 28, 28] and info["task"] == "classification"
    assert info["shapes"]["x_train"] == [300, 1, 28, 28] and info["dtype"] == "|u1"
    assert set(arrays) == {"x_train", "y_train", "x_test", "y_test"}
    for name, array in uploaded.arrays.items():
        assert arrays[name].dtype == array.dtype
        np.testing.assert_array_equal(arrays[name], array)


def test_large_arrays_are_split_into_chunks_no_larger_than_the_limit(redis_client):
    uploaded = _upload(n=300)  # x_train is 235,200 bytes
    store = DatasetStore(redis_client, blobs=RedisChunkedBlobs(redis_client, chunk_bytes=50_000))

    info = store.put("acme", uploaded)

    key = f"{PREFIX}{info['id']}:x_train"
    chunk_sizes = [len(chunk) for chunk in redis_client.lrange(key, 0, -1)]
    assert chunk_sizes == [50_000] * 4 + [35_200]
    assert info["arrays"]["x_train"]["chunks"] == 5
    np.testing.assert_array_equal(store.arrays(info["id"])["x_train"], uploaded.arrays["x_train"])


def test_list_shows_a_tenants_sets_newest_first_and_no_one_elses(redis_client):
    store = DatasetStore(redis_client)
    first = store.put("acme", _upload(n=20))
    second = store.put("acme", _upload(n=30))
    store.put("globex", _upload(n=20))

    listed = store.list("acme")

    assert [i["id"] for i in listed] == [second["id"], first["id"]]
    assert store.list("nobody") == []


def test_delete_removes_metadata_chunks_and_index_entry(redis_client):
    store = DatasetStore(redis_client)
    info = store.put("acme", _upload(n=20))

    assert store.delete(info["id"]) is True

    assert store.info(info["id"]) is None
    assert store.list("acme") == []
    assert redis_client.keys(f"{PREFIX}{info['id']}*") == []
    assert redis_client.zcard(TENANT_INDEX + "acme") == 0
    assert store.delete(info["id"]) is False
    with pytest.raises(DatasetError, match="no uploaded data set"):
        store.arrays(info["id"])


def test_works_with_a_client_that_decodes_responses(redis_client, redis_url):
    text_client = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    store = DatasetStore(text_client)

    info = store.put("acme", _upload(n=20))

    assert store.info(info["id"])["sha256"] == info["sha256"]
    assert store.arrays(info["id"])["x_train"].shape == (20, 1, 28, 28)
    text_client.close()


def test_load_dataset_reads_an_uploaded_set_by_id(redis_client):
    uploaded = _upload(n=100)
    info = DatasetStore(redis_client).put("acme", uploaded)

    ds = load_dataset({"id": info["id"], "validation_split": 0.2}, redis=redis_client)

    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert len(ds.x_train) + len(ds.x_val) == 100 and ds.x_test.shape == (20, 1, 28, 28)
    assert ds.preprocessing["divisor"] == 255.0
    with pytest.raises(DatasetError, match="no uploaded data set 'ds_missing'"):
        load_dataset({"id": "ds_missing"}, redis=redis_client)


# A process that stores a 32 MB set in 16 KB chunks (2,000 round trips) until it is killed.
_STORE_FOREVER = """
import sys
import numpy as np
import redis
from worker.datasets import DatasetStore, validate_upload
from worker.datasets.store import RedisChunkedBlobs
from tests.harness import npz_bytes
client = redis.Redis.from_url(sys.argv[1])
x = np.random.default_rng(0).integers(0, 256, (40_000, 28, 28), dtype=np.uint8)
uploaded = validate_upload("big.npz", npz_bytes(x_train=x, y_train=np.arange(40_000) % 10),
                           max_bytes=1 << 30)
DatasetStore(client, blobs=RedisChunkedBlobs(client, chunk_bytes=16_384)).put("acme", uploaded)
"""


@pytest.mark.integration
def test_a_store_killed_midway_leaves_only_keys_that_expire_and_lists_nothing(
    redis_url, redis_client
):
    import signal
    import subprocess
    import sys

    from tests.harness import REPO_ROOT, wait_until, worker_env

    writer = subprocess.Popen(
        [sys.executable, "-c", _STORE_FOREVER, redis_url], cwd=REPO_ROOT, env=worker_env(redis_url)
    )
    try:
        wait_until(
            lambda: any(redis_client.llen(k) > 20 for k in redis_client.keys(PREFIX + "*")),
            60,
            "the store to be midway",
        )
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    finally:
        if writer.poll() is None:
            writer.kill()

    keys = redis_client.keys(PREFIX + "*")
    assert keys  # the chunks written so far, ...
    assert all(0 < redis_client.ttl(key) <= 3600 for key in keys)  # ... all expiring
    assert DatasetStore(redis_client).list("acme") == []
    assert redis_client.keys(TENANT_INDEX + "*") == []


def test_a_finished_store_keeps_its_chunks_for_good(redis_client):
    # Redis chunks are the previous version's layout, kept for reading legacy sets
    info = DatasetStore(redis_client, RedisChunkedBlobs(redis_client)).put("acme", _upload(n=20))

    keys = redis_client.keys(f"{PREFIX}{info['id']}*")
    assert len(keys) == 5  # metadata + four arrays, no partial key left
    assert all(redis_client.ttl(key) == -1 for key in keys)
