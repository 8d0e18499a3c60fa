"""CSV uploads: a header row, numeric columns, one of them the label (default the last).

The label column may hold text class names instead of numbers ("malignant", "benign"): then
the distinct names, sorted (Python's ``sorted``: by code point), are the classes 0..C-1.

Any line ending works (LF, CRLF, CR alone). Rows are parsed in blocks straight into the stored
float32 array, so memory is the decoded text plus the result, not a list of cells. Width is
bounded before the csv module splits a line (a 10M-column header or row is refused from its
comma count), and every parse failure is a DatasetError naming the line and the column.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

import numpy as np

from worker.datasets.base import DatasetError
from worker.datasets.csv_labels import LabelColumn, bad_cell, is_number
from worker.datasets.npz_upload import DatasetTooLarge

BLOCK_CELLS = 1 << 16  # cells converted per NumPy call
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)?")
_EXACT_INTEGERS = 2**53  # float64 holds every integer up to this exactly


class CsvTable(NamedTuple):
    """A parsed CSV: its arrays, its class names if the labels were text, its label column."""

    arrays: dict[str, np.ndarray]
    classes: list[str] | None  # sorted text labels; None when the labels were numbers
    label_column: str  # the header name of the label column (given or the last)


def parse_csv(
    file: BinaryIO, label_column: str | None = None, max_columns: int = 100_000
) -> CsvTable:
    """``{"x_train": (n, d) float32, "y_train": (n,) int64 or float64}`` of a CSV file.

    Numeric labels are int64 when every label cell is an integer literal of at most 2**53 in
    magnitude, float64 otherwise. Text labels (any label cell not a number) are class names:
    y is the int64 index of each name in the sorted names, which ``classes`` lists.
    Errors name the line (the header is line 1) and the column; a header of more than
    ``max_columns`` columns raises DatasetTooLarge.
    """
    text = _decode(_within_width(file.read(), max_columns))  # the bytes are dropped once decoded
    lines = _Lines(text, max_columns)
    reader = csv.reader(lines)
    header: list[str] = []
    while not any(header):  # blank lines before the header are skipped, like blank rows
        header = [name.strip() for name in _next_record(reader, lines)]
    _check_header(header, max_columns)
    label = _label_index(header, label_column)
    lines.max_fields = len(header)
    max_rows = text.count("\n") + text.count("\r") - text.count("\r\n") + 1
    x = np.empty((max_rows, len(header) - 1), dtype=np.float32)
    y = np.empty(max_rows, dtype=np.float64)
    features = [i for i in range(len(header)) if i != label]
    labels = LabelColumn(max_rows, header, label)
    if label_column is None:  # text in a feature column may be the labels, left unnamed
        labels.feature_text_hint = (
            f" (only the label column may hold text: the last, {header[-1]!r}, unless the "
            "label_column field names another)"
        )
    block: list[list[str]] = []
    starts: list[int] = []
    n = 0
    block_rows = max(1, BLOCK_CELLS // len(header))
    while True:
        start = reader.line_num + 1
        row = _next_record(reader, lines, end=True)
        if row is None or len(block) == block_rows:
            n = _convert(block, starts, header, label, features, x, y, n, labels)
            block, starts = [], []
        if row is None:
            break
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DatasetError(
                f"line {start}, column {min(len(row), len(header)) + 1}: has {len(row)} "
                f"values, the header has {len(header)} columns"
            )
        block.append(row)
        starts.append(start)
    if n == 0:
        raise DatasetError("file: the CSV has a header but no data rows")
    x = x[:n] if n > max_rows // 2 else x[:n].copy()
    if labels.text_at is not None:
        y_codes, classes = labels.class_indices(n)
        return CsvTable({"x_train": x, "y_train": y_codes}, classes, header[label])
    if labels.non_finite_at is not None:
        line, cell = labels.non_finite_at
        bad_cell(line, label, header, cell, "is not a finite number")
    y = y[:n] if n > max_rows // 2 else y[:n].copy()
    # an integer literal beyond 2**53 is not held exactly by float64 (and beyond int64 its cast
    # is undefined: 1e23 became -2**63): such labels stay floats, so they are targets
    integral = labels.integral and bool(np.all(np.abs(y) <= _EXACT_INTEGERS))
    arrays = {"x_train": x, "y_train": y.astype(np.int64) if integral else y}
    return CsvTable(arrays, None, header[label])


def _within_width(content: bytes, max_columns: int) -> bytes:
    """``content`` if its first line has at most ``max_columns`` fields by comma count (checked
    on the bytes, before a 10M-column header is decoded or split)."""
    ends = [at for at in (content.find(b"\n"), content.find(b"\r")) if at >= 0]
    fields = content.count(b",", 0, min(ends, default=len(content))) + 1
    if fields > max_columns:
        raise DatasetTooLarge(
            f"file: the CSV header has {fields} columns, over the limit of "
            f"{max_columns} (GRADQ_MAX_DATASET_COLUMNS)"
        )
    return content


def _decode(content: bytes) -> str:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(content, exc.start)
        raise DatasetError(
            f"line {line}, column {column}: the CSV is not UTF-8 text "
            f"(byte 0x{content[exc.start]:02x})"
        ) from None
    return text.removeprefix("\ufeff")


def _position(content: bytes, offset: int) -> tuple[int, int]:
    """(line, CSV column) of byte ``offset``, both from 1; any line ending counts."""
    breaks = content.count(b"\n", 0, offset) + content.count(b"\r", 0, offset)
    line = breaks - content.count(b"\r\n", 0, offset) + 1
    line_start = max(content.rfind(b"\n", 0, offset), content.rfind(b"\r", 0, offset)) + 1
    return line, content.count(b",", line_start, offset) + 1


class _Lines:
    """The text's lines, endings kept (what csv.reader wants); refuses a line wider than
    ``max_fields`` from its comma count before csv splits it (quoted commas count too: no
    numeric cell holds one)."""

    def __init__(self, text: str, max_columns: int):
        self._matches = _LINE.finditer(text)
        self.number = 0
        self.last = ""
        self.max_columns = max_columns
        self.max_fields: int | None = None

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._matches).group()
        if not line:
            raise StopIteration
        self.number += 1
        self.last = line
        fields = line.count(",") + 1
        if self.max_fields is None and fields > self.max_columns:
            raise DatasetTooLarge(
                f"file: the CSV header has {fields} columns, over the limit of "
                f"{self.max_columns} (GRADQ_MAX_DATASET_COLUMNS)"
            )
        if self.max_fields is not None and fields > self.max_fields:
            raise DatasetError(
                f"line {self.number}, column {self.max_fields + 1}: has {fields} values, "
                f"the header has {self.max_fields} columns"
            )
        return line


def _next_record(reader, lines: _Lines, end: bool = False) -> list[str] | None:
    """The next record; None at the end if ``end`` (else: the CSV is empty)."""
    try:
        return next(reader)
    except StopIteration:
        if end:
            return None
        raise DatasetError("file: the CSV is empty (expected a header row and data rows)") from None
    except csv.Error as exc:  # a field over csv's size limit (the one error csv raises here)
        pieces = lines.last.split(",")
        limit = csv.field_size_limit()
        column = next((i for i, p in enumerate(pieces, 1) if len(p) > limit), len(pieces))
        raise DatasetError(f"line {lines.number}, column {column}: {exc}") from None


def _check_header(header: list[str], max_columns: int) -> None:
    if len(header) > max_columns:
        raise DatasetTooLarge(
            f"file: the CSV header has {len(header)} columns, over the limit of "
            f"{max_columns} (GRADQ_MAX_DATASET_COLUMNS)"
        )
    if len(header) < 2:
        raise DatasetError(
            f"line 1: the CSV needs at least 2 columns (features and a label), "
            f"header has {len(header)}"
        )
    seen: set[str] = set()
    for position, name in enumerate(header, start=1):
        if is_number(name):
            raise DatasetError(
                f"line 1, column {position}: the first row must be a header of column names, "
                f"got {name!r}"
            )
        if not name or name in seen:
            raise DatasetError(
                f"line 1, column {position}: header name {name!r} is empty or repeated"
            )
        seen.add(name)


def _label_index(header: list[str], label_column: str | None) -> int:
    if label_column is None:
        return len(header) - 1
    try:
        return header.index(label_column)
    except ValueError:
        shown = ", ".join(header[:20]) + (
            f", ... ({len(header)} in all)" if len(header) > 20 else ""
        )
        raise DatasetError(
            f"label_column: {label_column!r} is not a column of the CSV (columns: {shown})"
        ) from None


def _convert(block, starts, header, label, features, x, y, n, labels: LabelColumn) -> int:
    """Parse a block of rows into ``x[n:]`` / ``y[n:]`` (labels via ``labels``); returns new n."""
    if not block:
        return n
    numbers = labels.add([row[label] for row in block], starts, n)
    if numbers is None:  # text labels: the features are parsed without them
        for row in block:
            row[label] = "0"
    try:
        values = np.array(block, dtype=np.float64)
    except ValueError:
        _raise_first_bad_cell(block, starts, header, labels.feature_text_hint)
        raise
    bad_rows, bad_cols = np.nonzero(~np.isfinite(values[:, features]))
    if bad_rows.size:
        r, c = bad_rows[0], features[bad_cols[0]]
        bad_cell(starts[r], c, header, block[r][c], "is not a finite number")
    rows = len(block)
    with np.errstate(over="ignore"):  # overflow is reported just below
        x[n : n + rows] = values[:, features]
    too_big = np.nonzero(~np.isfinite(x[n : n + rows]))
    if too_big[0].size:
        r, c = too_big[0][0], features[too_big[1][0]]
        bad_cell(starts[r], c, header, block[r][c], "is too large for float32")
    if numbers is not None:
        y[n : n + rows] = numbers
    return n + rows


def _raise_first_bad_cell(block, starts, header, hint: str) -> None:
    for row, start in zip(block, starts, strict=True):
        for column, cell in enumerate(row):
            if not is_number(cell):
                bad_cell(start, column, header, cell, "is not a number" + hint)
