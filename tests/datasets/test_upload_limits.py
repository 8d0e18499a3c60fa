"""Uploads a client can get wrong or make hostile: line endings, parse errors with their line and
column, wide CSVs, archives that expand far beyond their size, and the memory an upload costs."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import numpy as np
import pytest

from tests.harness import npz_bytes
from worker.datasets import DatasetError, validate_upload
from worker.datasets.npz_upload import DatasetTooLarge

LIMIT = 1 << 30
ROWS = b"a,b,label{0}1,2,0{0}3,4,1{0}5,6,0{0}7,8,1{0}"


def csv_upload(content: bytes, **options):
    options.setdefault("max_bytes", LIMIT)
    return validate_upload("t.csv", content, **options)


def refusal(content: bytes, filename: str = "t.csv", **options) -> DatasetError:
    options.setdefault("max_bytes", LIMIT)
    with pytest.raises(DatasetError) as info:
        validate_upload(filename, content, **options)
    return info.value


def traced_peak(action) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = action()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("ending", [b"\r", b"\n", b"\r\n"], ids=["CR", "LF", "CRLF"])
def test_csv_loads_with_any_line_ending(ending):
    uploaded = csv_upload(ROWS.replace(b"{0}", ending))

    np.testing.assert_array_equal(uploaded.arrays["x_train"], [[1, 2], [3, 4], [5, 6], [7, 8]])
    np.testing.assert_array_equal(uploaded.arrays["y_train"], [0, 1, 0, 1])
    assert uploaded.arrays["y_train"].dtype == np.int64 and uploaded.num_classes == 2


def test_csv_line_numbers_count_blank_lines_and_mixed_endings():
    content = b"a,label\r\n\r\n1,0\r2,1\n\nx,0\n"

    assert "line 6, column 1 ('a'): 'x' is not a number" in str(refusal(content))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a,b\n1,2\n3,\xff\n", "line 3, column 2: the CSV is not UTF-8 text (byte 0xff)"),
        (b"a,b\n1,2\n3\n", "line 3, column 2: has 1 values, the header has 2 columns"),
        (b"a,b\n1,2\n3,4,5\n", "line 3, column 3: has 3 values, the header has 2 columns"),
        (b"a,b\n1,2\n3,\n", "line 3, column 2 ('b'): '' is not a number"),
        (b"a,b\n1,2\n3,nan\n", "line 3, column 2 ('b'): 'nan' is not a finite number"),
        (b"a,b\n1e39,2\n", "line 2, column 1 ('a'): '1e39' is too large for float32"),
        (b'a,b\n1,"2\n3"\n', "line 2, column 2 ('b'): '2\\n3' is not a number"),
        (b"a,b,c\n1,2," + b"9" * 200_000 + b"\n", "line 2, column 3: field larger than"),
        (b"a,1\n2,3\n", "line 1, column 2: the first row must be a header"),
        (b"a,a\n2,3\n", "line 1, column 2: header name 'a' is empty or repeated"),
    ],
)
def test_every_csv_parse_failure_names_its_line_and_column(content, message):
    error = refusal(content)

    assert message in str(error)
    assert not isinstance(error, DatasetTooLarge)


@pytest.mark.parametrize("columns", [10_000, 40_000])
def test_wide_csvs_load(columns):
    header = ",".join(f"c{i}" for i in range(columns)) + "\n"
    row = ",".join(str(i % 7) for i in range(columns)) + "\n"
    content = (header + row + row.replace("0", "1", 1)).encode()

    uploaded = csv_upload(content, max_columns=columns, task="regression")

    assert uploaded.arrays["x_train"].shape == (2, columns - 1)
    assert uploaded.arrays["x_train"][0, 7] == 0 and uploaded.arrays["x_train"][1, 0] == 1


def test_a_header_over_the_column_limit_is_refused_from_its_width_without_splitting_it():
    content = ",".join(f"c{i}" for i in range(1_000_000)).encode() + b"\n1\n"  # 6.9 MB

    error, peak = traced_peak(lambda: refusal(content, max_columns=1000))

    assert isinstance(error, DatasetTooLarge)
    assert "1000000 columns, over the limit of 1000 (GRADQ_MAX_DATASET_COLUMNS)" in str(error)
    assert peak < 3 * len(content)  # 10^6 column-name strings alone would take ~60 MB


def test_a_data_row_wider_than_the_header_is_refused_before_it_is_split():
    content = b"a,label\n1,0\n" + b"1," * 2_000_000 + b"1\n"

    error, peak = traced_peak(lambda: refusal(content))

    assert "line 3, column 3: has 2000001 values, the header has 2 columns" in str(error)
    assert peak < 3 * len(content)


def _bomb(rows: int, columns: int) -> bytes:
    """An .npz of float64 zeros, written a block at a time (deflated ~1000:1)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("x_train.npy", "w", force_zip64=True) as member:
            header = {"descr": "<f8", "fortran_order": False, "shape": (rows, columns)}
            np.lib.format.write_array_header_1_0(member, header)
            block = np.zeros((1024, columns)).tobytes()
            for _ in range(rows // 1024):
                member.write(block)
        archive.writestr("y_train.npy", npz_member(np.zeros(rows, np.int64)))
    return buffer.getvalue()


def npz_member(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def test_an_archive_expanding_over_the_limit_is_refused_from_its_headers():
    content = _bomb(rows=64 * 1024, columns=128)  # 64 MB of zeros in ~70 kB
    limit = 4 * 1024 * 1024

    error, peak = traced_peak(lambda: refusal(content, "bomb.npz", max_bytes=limit))

    assert isinstance(error, DatasetTooLarge)
    expanded = 64 * 1024 * 128 * 8 + 64 * 1024 * 8
    assert f"arrays expand to {expanded} bytes, over the limit of {limit} bytes" in str(error)
    assert peak < 1024 * 1024  # nothing was decompressed


def test_the_planned_stored_size_is_offered_before_decompressing_and_can_refuse():
    content = _bomb(rows=64 * 1024, columns=128)
    offered = []

    def quota(nbytes: int) -> None:
        offered.append(nbytes)
        raise DatasetTooLarge(f"quota: {nbytes}")

    error, peak = traced_peak(lambda: refusal(content, "bomb.npz", on_planned_bytes=quota))

    assert offered == [64 * 1024 * 128 * 4 + 64 * 1024 * 8]  # float32 features, int64 labels
    assert str(error) == f"quota: {offered[0]}" and peak < 1024 * 1024


def test_a_header_that_claims_more_data_than_the_archive_holds_is_refused():
    member = bytearray(npz_member(np.zeros((10, 3), np.float32)))
    member[: len(member)] = member.replace(b"(10, 3)", b"(99, 3)")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x_train.npy", bytes(member))
        archive.writestr("y_train.npy", npz_member(np.zeros(99, np.int64)))

    message = str(refusal(buffer.getvalue(), "set.npz"))

    assert "x_train: header says shape [99, 3] of float32 (1188 bytes)" in message
    assert "holds 120 bytes" in message


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: rng.random((64 * 1024, 64), dtype=np.float32),
        lambda rng: rng.integers(0, 256, (5000, 32, 32, 3), dtype=np.uint8),
    ],
    ids=["float32 table", "uint8 NHWC images"],
)
def test_accepting_an_npz_from_a_file_holds_little_beyond_the_stored_arrays(tmp_path, make):
    x = make(np.random.default_rng(0))
    path = tmp_path / "set.npz"
    path.write_bytes(npz_bytes(x_train=x, y_train=np.arange(len(x)) % 10))
    size = path.stat().st_size

    with path.open("rb") as file:
        uploaded, peak = traced_peak(lambda: validate_upload("set.npz", file, max_bytes=LIMIT))

    stored = sum(a.nbytes for a in uploaded.arrays.values())
    assert stored == pytest.approx(size, rel=0.05)  # stored as sent: float32 / uint8
    assert peak < 1.4 * stored  # the arrays plus a few chunks; a second copy would be 2x
    if x.ndim == 4:
        np.testing.assert_array_equal(uploaded.arrays["x_train"], x.transpose(0, 3, 1, 2))
    else:
        np.testing.assert_array_equal(uploaded.arrays["x_train"], x)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.zeros((4, 0)), "y_train": np.arange(4) % 2}, "x_train: shape [4, 0] has"),
        (
            {"x_train": np.zeros((4, 2)), "y_train": np.zeros((4, 0))},
            "y_train: shape [4, 0] has an empty target dimension",
        ),
        (
            {"x_train": np.zeros((4, 2)), "y_train": np.array([1.0, 2.0, 1e300, 0.5])},
            "y_train: targets too large for float32",
        ),
    ],
)
def test_arrays_that_could_never_train_are_refused_at_upload(arrays, message):
    assert message in str(refusal(npz_bytes(**arrays), "set.npz"))


def test_a_ten_million_column_header_is_refused_from_its_bytes_at_the_default_limit():
    content = b"c," * 10_000_000 + b"label\n" + b"0," * 10_000_000 + b"1\n"  # 40 MB

    error, peak = traced_peak(lambda: refusal(content, max_columns=100_000))

    assert isinstance(error, DatasetTooLarge)
    assert "10000001 columns, over the limit of 100000" in str(error)
    assert peak < 1024 * 1024  # neither decoded nor split
