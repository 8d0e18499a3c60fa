"""The per-host data set cache: one download per host, damaged copies replaced, bounded size."""

from __future__ import annotations

import hashlib
import threading

from tests.harness import run_in_threads
from worker.storage.host_cache import HostCache


def record_of(data: bytes) -> dict:
    return {
        "key": "datasets/ds_1/x_train",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


class CountingSource:
    """A download that fills ``out`` with ``data`` and counts how often it ran."""

    def __init__(self, data: bytes):
        self.data, self.calls, self.lock = data, 0, threading.Lock()

    def __call__(self, out: memoryview) -> None:
        with self.lock:
            self.calls += 1
        out[:] = self.data


def test_shards_on_one_host_download_a_data_set_once(tmp_path):
    data = bytes(range(256)) * 4096
    source, cache = CountingSource(data), HostCache(tmp_path, max_bytes=10 * len(data))

    results = run_in_threads(lambda _: bytes(cache.fetch(record_of(data), source)), 4)

    assert source.calls == 1 and all(r == data for r in results)


def test_a_damaged_local_copy_is_downloaded_again_not_used(tmp_path):
    data = b"a" * 1000
    source, cache = CountingSource(data), HostCache(tmp_path, max_bytes=10_000)
    cache.fetch(record_of(data), source)
    (tmp_path / record_of(data)["sha256"]).write_bytes(b"b" * 1000)

    again = cache.fetch(record_of(data), source)

    assert bytes(again) == data and source.calls == 2
    assert (tmp_path / record_of(data)["sha256"]).read_bytes() == data


def test_the_least_recently_used_copies_go_when_the_budget_is_passed(tmp_path):
    cache = HostCache(tmp_path, max_bytes=2500)
    blobs = [bytes([i]) * 1000 for i in range(3)]
    for blob in blobs:
        cache.fetch(record_of(blob), CountingSource(blob))

    names = cache.entries()

    assert len(names) == 2 and record_of(blobs[0])["sha256"] not in names


def test_an_object_larger_than_the_budget_is_served_but_not_kept(tmp_path):
    data = b"x" * 5000
    cache = HostCache(tmp_path, max_bytes=1000)

    assert bytes(cache.fetch(record_of(data), CountingSource(data))) == data
    assert cache.entries() == []
