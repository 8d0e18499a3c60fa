"""Reading prediction inputs for ``gradq predict`` from .npy, .npz and .csv files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def read_inputs(path: Path, label_column: str | None = None) -> list:
    """The file's samples as nested lists (never unpickles).

    A CSV may start with a header row (any cell not a number); then the column named
    ``label_column`` (the training set's, recorded with the model) is dropped, so the file a data
    set was uploaded from predicts as it is. ValueError names the line and column of a cell
    that is not a number.
    """
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = np.load(path, allow_pickle=False)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            name = (
                "x"
                if "x" in archive.files
                else ("x_test" if "x_test" in archive.files else archive.files[0])
            )
            array = archive[name]
    elif suffix == ".csv":
        array = _csv_rows(path, label_column)
    else:
        raise ValueError(f"{path.name}: expected .npy, .npz, .csv, .png or .jpg")
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{path.name}: expected numbers, got dtype {array.dtype}")
    return array.tolist()


def _csv_rows(path: Path, label_column: str | None) -> np.ndarray:
    """float64 rows of a CSV, its header row (if any) and its label column (if named) left out."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = [(number, row) for number, row in enumerate(csv.reader(handle), 1) if any(row)]
    header: list[str] | None = None
    if rows and not all(_is_number(cell) for cell in rows[0][1]):
        header = [cell.strip() for cell in rows.pop(0)[1]]
    drop = header.index(label_column) if header and label_column in header else None
    values = []
    for number, row in rows:
        kept = [cell for column, cell in enumerate(row) if column != drop]
        try:
            values.append([float(cell) for cell in kept])
        except ValueError:
            column = next(i for i, cell in enumerate(row) if i != drop and not _is_number(cell))
            name = f" ({header[column]!r})" if header and column < len(header) else ""
            hint = (
                " (the model records no label column to drop; remove it from the file)"
                if header and label_column is None
                else ""
            )
            raise ValueError(
                f"{path.name}: line {number}, column {column + 1}{name}: {row[column]!r} is not "
                f"a number{hint}"
            ) from None
    return np.asarray(values, dtype=np.float64)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
