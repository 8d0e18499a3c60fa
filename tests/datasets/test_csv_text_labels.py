"""CSV class labels given as text ("malignant", "benign"): sorted names become classes 0..C-1,
the names and the label column are stored with the set (docs/datasets.md, "Uploading")."""

from __future__ import annotations

import numpy as np
import pytest

from worker.datasets import DatasetError, DatasetStore, load_dataset, validate_upload
from worker.datasets.csv_labels import MAX_CLASS_NAME, MAX_CLASSES

LIMIT = 1 << 30
CANCER = (
    b"radius,texture,diagnosis\n"
    b"17.9,10.3,malignant\n"
    b"13.5,14.3,benign\n"
    b"20.5,21.2,malignant\n"
    b"12.4,15.7, benign\n"  # spaces around a name are not part of it, as in the header
)


def upload(content: bytes, **options):
    return validate_upload("t.csv", content, max_bytes=LIMIT, **options)


def refusal(content: bytes, **options) -> str:
    with pytest.raises(DatasetError) as info:
        upload(content, **options)
    return str(info.value)


def test_text_labels_are_classes_in_sorted_order():
    uploaded = upload(CANCER)

    assert uploaded.classes == ["benign", "malignant"] and uploaded.num_classes == 2
    assert uploaded.task == "classification" and uploaded.label_column == "diagnosis"
    np.testing.assert_array_equal(uploaded.arrays["y_train"], [1, 0, 1, 0])
    assert uploaded.arrays["y_train"].dtype == np.int64
    np.testing.assert_array_equal(
        uploaded.arrays["x_train"][:, 0], np.float32([17.9, 13.5, 20.5, 12.4])
    )


def test_the_order_is_by_name_not_by_first_appearance_even_across_blocks(monkeypatch):
    monkeypatch.setattr("worker.datasets.csv_upload.BLOCK_CELLS", 4)  # 2 rows per block
    rows = [("cat", 1), ("dog", 2), ("ant", 3), ("cat", 4), ("bee", 5)]
    content = "x,animal\n" + "".join(f"{x},{name}\n" for name, x in rows)

    uploaded = upload(content.encode())

    assert uploaded.classes == ["ant", "bee", "cat", "dog"]
    np.testing.assert_array_equal(uploaded.arrays["y_train"], [2, 3, 0, 2, 1])


def test_a_text_label_after_numeric_ones_makes_every_label_a_name(monkeypatch):
    monkeypatch.setattr("worker.datasets.csv_upload.BLOCK_CELLS", 4)
    content = b"x,y\n1,2\n2,10\n3,2\n4,other\n"

    uploaded = upload(content)

    assert uploaded.classes == ["10", "2", "other"]  # names sort as text
    np.testing.assert_array_equal(uploaded.arrays["y_train"], [1, 0, 1, 2])


def test_numeric_labels_keep_their_classes_and_record_the_label_column():
    uploaded = upload(b"a,label,b\n1,0,5\n2,1,6\n3,2,7\n", label_column="label")

    assert uploaded.classes is None and uploaded.to_raw().classes == ["0", "1", "2"]
    assert uploaded.label_column == "label"
    np.testing.assert_array_equal(uploaded.arrays["y_train"], [0, 1, 2])


def test_text_labels_cannot_be_regression_targets():
    message = refusal(CANCER, task="regression")
    assert message.startswith("task: regression needs numeric targets")
    assert "'diagnosis'" in message


def test_more_text_classes_than_the_limit_are_refused_naming_line_and_column():
    rows = "".join(f"{i},class-{i}\n" for i in range(MAX_CLASSES + 1))

    message = refusal(("x,kind\n" + rows).encode())

    assert message.startswith(f"line {MAX_CLASSES + 2}, column 2 ('kind'): ")
    assert f"at most {MAX_CLASSES} classes" in message


def test_a_class_name_over_the_length_limit_is_refused():
    long = "z" * (MAX_CLASS_NAME + 1)

    message = refusal(f"x,kind\n1,a\n2,{long}\n".encode())

    assert message.startswith("line 3, column 2 ('kind'): a label of 201 characters")


@pytest.mark.parametrize(
    ("cell", "line"), [("", 3), ('"two\nlines"', 3)], ids=["empty", "line break"]
)
def test_an_empty_label_or_one_with_a_control_character_is_refused(cell, line):
    message = refusal(f"x,kind\n1,a\n2,{cell}\n3,b\n".encode())
    assert message.startswith(f"line {line}, column 2 ('kind'): ")
    assert "is not a number" in message


def test_features_must_still_be_numbers_next_to_text_labels():
    assert "line 3, column 1 ('x'): 'n/a' is not a number" in refusal(b"x,kind\n1,a\nn/a,b\n")


def test_stored_sets_keep_the_names_and_label_column_for_training(redis_client):
    store = DatasetStore(redis_client)
    info = store.put("acme", upload(CANCER + b"14.1,9.9,benign\n11.0,8.8,malignant\n"))

    data = load_dataset({"id": info["id"], "validation_split": 0}, redis=redis_client)

    assert info["classes"] == ["benign", "malignant"] and info["label_column"] == "diagnosis"
    assert data.classes == ["benign", "malignant"] and data.label_column == "diagnosis"
    assert data.num_classes == 2 and sorted(set(data.y_train.tolist())) == [0, 1]
