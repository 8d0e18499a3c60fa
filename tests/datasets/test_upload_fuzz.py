"""Property tests: whatever bytes a client uploads, the answer is an upload or a DatasetError."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import npz_bytes
from worker.datasets import DatasetError, validate_upload


def _archives() -> list[bytes]:
    rng = np.random.default_rng(0)
    plain = npz_bytes(
        x_train=rng.integers(0, 300, (6, 2, 3, 3), dtype=np.int16),
        y_train=np.arange(6) % 2,
        x_test=rng.random((2, 2, 3, 3)),
        y_test=np.array([0, 1]),
    )
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_train=rng.random((8, 4)), y_train=np.linspace(0, 1, 8))
    return [plain, buffer.getvalue()]


ARCHIVES = _archives()


def accepted_or_refused(filename: str, content: bytes) -> None:
    try:
        uploaded = validate_upload(filename, content, max_bytes=1 << 20)
    except DatasetError:
        return
    assert uploaded.arrays["x_train"].dtype in (np.uint8, np.float32)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from(range(len(ARCHIVES))),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 10**6),
)
def test_a_damaged_npz_is_refused_cleanly(which, edits, cut):
    content = bytearray(ARCHIVES[which])
    for position, value in edits:
        content[position % len(content)] = value
    content = bytes(content[: max(1, cut % (len(content) + 1))])

    accepted_or_refused("set.npz", content)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(alphabet=',\r\n"0123456789.-+e xa\x00', max_size=200))
def test_any_csv_is_loaded_or_refused_cleanly(text):
    content = text if isinstance(text, bytes) else text.encode()

    accepted_or_refused("set.csv", content)


def _central_directory_edit(offset: int, value: bytes) -> bytes:
    content = bytearray(ARCHIVES[0])
    start = content.index(b"PK\x01\x02")  # the first member's central directory entry
    content[start + offset : start + offset + len(value)] = value
    return bytes(content)


def test_an_encrypted_member_is_refused_naming_it():
    content = _central_directory_edit(8, b"\x01\x00")  # general purpose flag: encrypted

    try:
        validate_upload("set.npz", content, max_bytes=1 << 20)
    except DatasetError as error:
        assert "x_train" in str(error) and "encrypted" in str(error)
    else:
        raise AssertionError("an encrypted member was accepted")


def test_an_unknown_compression_method_is_refused_naming_it():
    content = _central_directory_edit(10, b"\x63\x00")  # method 99 (AES)

    try:
        validate_upload("set.npz", content, max_bytes=1 << 20)
    except DatasetError as error:
        assert "x_train" in str(error) and "compression" in str(error)
    else:
        raise AssertionError("an unknown compression method was accepted")


@pytest.mark.filterwarnings("ignore:Duplicate name")  # zipfile warns while we build it
def test_an_archive_of_many_entries_is_refused_before_its_directory_is_parsed():
    import tracemalloc
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for _ in range(20_000):  # 20k is enough to pass 64 KiB of directory
            archive.writestr("x_train.npy", b"")
    content = buffer.getvalue()

    tracemalloc.start()
    try:
        validate_upload("many.npz", content, max_bytes=1 << 30)
    except DatasetError as error:
        assert "directory takes" in str(error)
    else:
        raise AssertionError("accepted")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 200_000  # 20k ZipInfo objects would take several MB
