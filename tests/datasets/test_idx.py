"""IDX parsing: gzip or raw, every element type, and clear errors for damaged files."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from worker.datasets import DatasetError, parse_idx, read_idx
from worker.datasets.idx import encode_idx


def test_parses_the_mnist_image_layout_byte_by_byte():
    # magic 0x00000803 (ubyte, 3 dims), dims 2 x 2 x 3, then 12 pixels
    data = struct.pack(">HBB3I", 0, 0x08, 3, 2, 2, 3) + bytes(range(12))

    array = parse_idx(data)

    assert array.shape == (2, 2, 3) and array.dtype == np.uint8
    np.testing.assert_array_equal(array.ravel(), np.arange(12))
    assert not array.flags.writeable


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trips_every_idx_element_type_in_native_byte_order(dtype):
    original = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)

    parsed = parse_idx(encode_idx(original))

    assert parsed.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(parsed, original)


def test_big_endian_values_are_decoded():
    data = struct.pack(">HBBI", 0, 0x0B, 1, 2) + struct.pack(">2h", 258, -2)

    np.testing.assert_array_equal(parse_idx(data), [258, -2])


def test_reads_gzip_and_raw_files_alike(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    (tmp_path / "raw").write_bytes(encode_idx(labels))
    (tmp_path / "packed.gz").write_bytes(gzip.compress(encode_idx(labels)))

    np.testing.assert_array_equal(read_idx(tmp_path / "raw"), labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "packed.gz"), labels)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00", "truncated header"),
        (struct.pack(">HBB", 0x0102, 0x08, 1) + b"\0" * 8, "bad magic number"),
        (struct.pack(">HBB", 0, 0x07, 1) + b"\0" * 8, "unknown IDX type code 0x07"),
        (struct.pack(">HBB", 0, 0x08, 0), "0 dimensions"),
        (struct.pack(">HBB", 0, 0x08, 3) + b"\0" * 4, r"truncated header \(8 of 16 bytes\)"),
        (struct.pack(">HBBII", 0, 0x08, 2, 3, 3) + b"\0" * 8, "truncated: shape .* needs 9"),
        (struct.pack(">HBBI", 0, 0x08, 1, 2) + b"\0" * 3, "trailing bytes"),
        (b"\x1f\x8b" + b"garbage", "corrupt gzip stream"),
    ],
)
def test_damaged_files_raise_a_clear_error(data, message):
    with pytest.raises(DatasetError, match=message):
        parse_idx(data, source="t10k-images")


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(encode_idx(np.zeros(10, np.uint8)))[:-12])

    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte.gz"):
        read_idx(path)
