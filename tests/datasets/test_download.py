"""download(): SHA-256 verified, atomic, and leaves nothing behind on failure."""

from __future__ import annotations

import gzip
import hashlib
import threading

import numpy as np
import pytest

from tests.datasets.conftest import Gate
from tests.harness import free_port
from worker.datasets import DownloadError, download, read_idx
from worker.datasets.idx import encode_idx

LABELS = np.array([7, 2, 1, 0, 4, 1, 4, 9], dtype=np.uint8)
PAYLOAD = gzip.compress(encode_idx(LABELS))
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


def test_downloads_a_verified_idx_file(file_server, tmp_path):
    file_server.files["/labels.gz"] = PAYLOAD
    target = tmp_path / "mnist" / "labels.gz"

    path = download(file_server.url + "labels.gz", target, DIGEST)

    assert path == target and target.read_bytes() == PAYLOAD
    np.testing.assert_array_equal(read_idx(target), LABELS)
    assert sorted(p.name for p in target.parent.iterdir()) == ["labels.gz"]


def test_checksum_mismatch_raises_and_leaves_nothing_behind(file_server, tmp_path):
    tampered = bytearray(PAYLOAD)
    tampered[len(tampered) // 2] ^= 0xFF
    file_server.files["/labels.gz"] = bytes(tampered)
    target = tmp_path / "labels.gz"

    with pytest.raises(DownloadError, match=r"labels.gz: SHA-256 mismatch \(expected " + DIGEST):
        download(file_server.url + "labels.gz", target, DIGEST)

    assert list(tmp_path.iterdir()) == []


def test_http_error_names_the_url_and_status(file_server, tmp_path):
    with pytest.raises(DownloadError, match=r"/missing.gz: HTTP 404"):
        download(file_server.url + "missing.gz", tmp_path / "missing.gz", DIGEST)

    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_is_a_download_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/labels.gz"

    with pytest.raises(DownloadError, match="cannot connect"):
        download(url, tmp_path / "labels.gz", DIGEST, timeout=5)

    assert list(tmp_path.iterdir()) == []


def test_a_download_in_progress_is_never_visible_under_the_final_name(file_server, tmp_path):
    file_server.files["/labels.gz"] = PAYLOAD
    gate = file_server.gates["/labels.gz"] = Gate()
    target = tmp_path / "labels.gz"
    errors: list[BaseException] = []

    def fetch():
        try:
            download(file_server.url + "labels.gz", target, DIGEST)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    worker = threading.Thread(target=fetch)
    worker.start()
    assert gate.half_sent.wait(10)
    in_progress = list(tmp_path.iterdir())
    gate.release.set()
    worker.join(10)

    assert not errors
    assert target not in in_progress and len(in_progress) == 1
    assert in_progress[0].name.endswith(".part")
    assert target.read_bytes() == PAYLOAD and list(tmp_path.iterdir()) == [target]


def test_concurrent_downloads_of_one_file_all_end_with_the_complete_file(file_server, tmp_path):
    file_server.files["/labels.gz"] = PAYLOAD
    target = tmp_path / "labels.gz"
    seen: list[bytes] = []
    done = threading.Event()

    def watch():  # a reader polling the destination must never see a partial file
        while not done.is_set():
            if target.exists():
                seen.append(target.read_bytes())

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [
        threading.Thread(target=download, args=(file_server.url + "labels.gz", target, DIGEST))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    done.set()
    watcher.join(10)

    assert file_server.requests["/labels.gz"] == 6
    assert all(content == PAYLOAD for content in seen)
    assert list(tmp_path.iterdir()) == [target] and target.read_bytes() == PAYLOAD


def test_a_mirror_sending_too_much_is_cut_off_and_nothing_is_kept(file_server, tmp_path):
    file_server.files["/labels.gz"] = PAYLOAD

    with pytest.raises(DownloadError, match="more than 10 bytes"):
        download(file_server.url + "labels.gz", tmp_path / "labels.gz", DIGEST, max_bytes=10)

    assert list(tmp_path.iterdir()) == []
