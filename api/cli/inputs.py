"""Reading prediction inputs for ``gradq predict`` from .npy, .npz and .csv files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def read_inputs(path: Path) -> list:
    """The file's samples as nested lists (never unpickles)."""
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
        with open(path, newline="") as handle:
            rows = [row for row in csv.reader(handle) if row]
        try:
            array = np.asarray([[float(v) for v in row] for row in rows], dtype=np.float64)
        except ValueError:
            # a header line: skip it
            array = np.asarray([[float(v) for v in row] for row in rows[1:]], dtype=np.float64)
    else:
        raise ValueError(f"{path.name}: expected .npy, .npz, .csv, .png or .jpg")
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{path.name}: expected numbers, got dtype {array.dtype}")
    return array.tolist()
