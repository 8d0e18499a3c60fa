"""``gradq predict`` input files: .npy, .npz, .csv (with or without a header); never pickles."""

from __future__ import annotations

import numpy as np
import pytest

from api.cli.inputs import read_inputs


def test_npy_npz_and_csv_give_the_same_rows(tmp_path):
    rows = np.arange(12, dtype=np.float64).reshape(3, 4)
    np.save(tmp_path / "x.npy", rows)
    np.savez(tmp_path / "x.npz", y=np.zeros(3), x=rows)
    (tmp_path / "plain.csv").write_text("\n".join(",".join(map(str, r)) for r in rows) + "\n")
    (tmp_path / "header.csv").write_text("a,b,c,d\n" + (tmp_path / "plain.csv").read_text())
    for name in ("x.npy", "x.npz", "plain.csv", "header.csv"):
        assert read_inputs(tmp_path / name) == rows.tolist(), name


def test_object_arrays_and_unknown_suffixes_are_refused(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        read_inputs(tmp_path / "objects.npy")
    (tmp_path / "x.txt").write_text("1,2")
    with pytest.raises(ValueError, match=r"\.npy"):
        read_inputs(tmp_path / "x.txt")


def test_a_csv_header_lets_the_named_label_column_be_dropped(tmp_path):
    path = tmp_path / "cancer.csv"
    path.write_text("radius,diagnosis,texture\n17.5,malignant,10\n12,benign,14.5\n")

    assert read_inputs(path, label_column="diagnosis") == [[17.5, 10.0], [12.0, 14.5]]


def test_a_text_cell_left_in_is_refused_naming_line_and_column(tmp_path):
    path = tmp_path / "cancer.csv"
    path.write_text("radius,diagnosis,texture\n17.5,malignant,10\n")

    with pytest.raises(ValueError, match=r"line 2, column 2 \('diagnosis'\): 'malignant'"):
        read_inputs(path)
