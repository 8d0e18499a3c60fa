"""The per-tenant storage quota of data sets, on a real (private) Redis."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.harness import npz_bytes
from worker.datasets import DatasetStore, validate_upload
from worker.datasets.quota import RESERVED, StorageQuota, StorageQuotaExceeded
from worker.datasets.store import TENANT_INDEX


def upload(n: int = 100):
    """n samples of 10 uint8 features and int64 labels: 18 * n stored bytes."""
    rng = np.random.default_rng(n)
    content = npz_bytes(
        x_train=rng.integers(0, 256, (n, 10), dtype=np.uint8), y_train=np.arange(n) % 2
    )
    return validate_upload("set.npz", content, max_bytes=1 << 20)


def test_concurrent_reservations_never_pass_the_limit_together(redis_client):
    quota = StorageQuota(redis_client, limit=1000)

    def reserve(k: int) -> bool:
        try:
            StorageQuota(redis_client, limit=1000).reserve("acme", f"ds_{k}", 100)
        except StorageQuotaExceeded:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        granted = sum(pool.map(reserve, range(40)))

    assert granted == 10
    with pytest.raises(StorageQuotaExceeded) as error:
        quota.reserve("acme", "ds_late", 1)
    assert (error.value.needed, error.value.used, error.value.limit) == (1, 1000, 1000)


def test_put_counts_the_stored_bytes_and_delete_gives_them_back(redis_client):
    store = DatasetStore(redis_client, quota_bytes=4000)
    first = store.put("acme", upload(100))
    assert first["nbytes"] == 1800 and store.quota.used("acme") == 1800
    store.put("acme", upload(100))

    with pytest.raises(StorageQuotaExceeded) as error:
        store.put("acme", upload(100))

    message = str(error.value)
    assert "needs 1800 bytes" in message and "stores 3600 of its 4000 bytes" in message
    assert "GRADQ_MAX_STORAGE_BYTES_PER_TENANT" in message
    assert len(store.list("acme")) == 2  # the refused set left nothing behind
    assert store.quota.used("globex") == 0  # quotas are per tenant
    store.delete(first["id"])
    assert store.quota.used("acme") == 1800
    store.put("acme", upload(100))


def test_a_failed_write_releases_its_reservation(redis_client):
    class FailingBlobs:
        def put(self, key, data):
            raise OSError("disk full")

        def delete(self, key):
            pass

    store = DatasetStore(redis_client, blobs=FailingBlobs(), quota_bytes=2000)

    with pytest.raises(OSError):
        store.put("acme", upload(100))

    assert redis_client.hlen(RESERVED + "acme") == 0 and store.quota.used("acme") == 0


def test_an_expired_reservation_of_a_crashed_upload_stops_counting(redis_client):
    quota = StorageQuota(redis_client, limit=1000)
    redis_client.hset(RESERVED + "acme", "ds_crashed", "900:1")  # expired in 1970

    quota.reserve("acme", "ds_next", 1000)

    assert redis_client.hkeys(RESERVED + "acme") == [b"ds_next"]


def test_sets_stored_before_quotas_existed_are_counted(redis_client):
    old = DatasetStore(redis_client).put("acme", upload(100))
    redis_client.delete("gradq:datasets:usage:acme")  # as a store from before this change left it
    assert redis_client.zcard(TENANT_INDEX + "acme") == 1
    store = DatasetStore(redis_client, quota_bytes=3000)

    with pytest.raises(StorageQuotaExceeded, match="stores 1800 of its 3000"):
        store.check_room("acme", 1300)

    store.delete(old["id"])
    store.check_room("acme", 3000)
