"""CSV uploads: a header row, numeric columns, one of them the label (default the last)."""

from __future__ import annotations

import csv
import io

import numpy as np

from worker.datasets.base import DatasetError


def parse_csv(content: bytes, label_column: str | None = None) -> dict[str, np.ndarray]:
    """``{"x_train": (n, d) float64, "y_train": (n,) int64 or float64}`` of a CSV upload.

    Labels are int64 when every label cell is an integer literal, float64 otherwise.
    Errors name the column and the line (the header is line 1).
    """
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"file: CSV is not UTF-8 text ({exc})") from None
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        raise DatasetError("file: the CSV is empty (expected a header row and data rows)")
    header = [name.strip() for name in rows[0]]
    if len(header) < 2:
        raise DatasetError(
            f"file: the CSV needs at least 2 columns (features and a label), "
            f"header has {len(header)}"
        )
    if any(_is_number(name) for name in header):
        raise DatasetError(f"file: the first row must be a header of column names, got {header}")
    for position, name in enumerate(header):
        if not name or header.index(name) != position:
            raise DatasetError(f"column {position + 1}: header name {name!r} is empty or repeated")
    label_name = header[-1] if label_column is None else label_column
    if label_name not in header:
        raise DatasetError(
            f"label_column: {label_name!r} is not a column of the CSV "
            f"(columns: {', '.join(header)})"
        )
    body = rows[1:]
    if not body:
        raise DatasetError("file: the CSV has a header but no data rows")
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DatasetError(
                f"line {line}: has {len(row)} values, the header has {len(header)} columns"
            )
    cells = np.array(body, dtype=str)
    columns = {}
    for index, name in enumerate(header):
        columns[name] = _numeric_column(name, cells[:, index])
    label = header.index(label_name)
    features = [columns[name] for i, name in enumerate(header) if i != label]
    labels = columns[label_name]
    if all(_is_int_literal(cell) for cell in cells[:, label]):
        labels = labels.astype(np.int64)
    return {"x_train": np.stack(features, axis=1), "y_train": labels}


def _numeric_column(name: str, cells: np.ndarray) -> np.ndarray:
    try:
        values = np.char.strip(cells).astype(np.float64)
    except ValueError:
        for line, cell in enumerate(cells, start=2):
            if not _is_number(cell):
                raise DatasetError(
                    f"column {name!r}, line {line}: {str(cell)!r} is not a number"
                ) from None
        raise
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DatasetError(
            f"column {name!r}, line {bad[0] + 2}: {str(cells[bad[0]])!r} is not a finite number"
        )
    return values


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_int_literal(cell: str) -> bool:
    try:
        int(cell.strip())
    except ValueError:
        return False
    return True
