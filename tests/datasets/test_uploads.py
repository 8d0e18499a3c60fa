"""validate_upload: what is accepted, and one test per refusal naming the array or column."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest

from tests.harness import npz_bytes
from worker.datasets import DatasetError, validate_upload

LIMIT = 10_000_000


def good(**overrides) -> dict:
    arrays = {"x_train": np.ones((6, 3), np.float32), "y_train": np.array([0, 1, 2, 0, 1, 2])}
    arrays.update(overrides)
    return {k: v for k, v in arrays.items() if v is not None}


def refused(content: bytes, filename="set.npz", **options) -> str:
    with pytest.raises(DatasetError) as info:
        validate_upload(filename, content, max_bytes=options.pop("max_bytes", LIMIT), **options)
    return str(info.value)


# --- accepted uploads ---------------------------------------------------------------------------


def test_accepts_tabular_classification_and_records_its_facts():
    content = npz_bytes(**good())

    up = validate_upload("set.npz", content, max_bytes=LIMIT)

    assert up.task == "classification" and up.num_classes == 3 and up.input_shape == (3,)
    assert up.sha256 == hashlib.sha256(content).hexdigest()
    assert up.arrays["y_train"].dtype == np.int64 and up.arrays["x_train"].dtype == np.float32
    assert not up.is_image


def test_integer_pixel_arrays_of_rank_3_become_channels_first_images():
    up = validate_upload(
        "img.npz",
        npz_bytes(x_train=np.zeros((4, 5, 6), np.int64), y_train=np.array([0, 1, 0, 1])),
        max_bytes=LIMIT,
    )

    assert up.is_image and up.input_shape == (1, 5, 6) and up.pixel_max == 255.0
    assert up.arrays["x_train"].dtype == np.uint8


def test_channels_last_rank_4_images_are_transposed_to_channels_first():
    x = np.arange(2 * 6 * 7 * 3).reshape(2, 6, 7, 3) % 256
    up = validate_upload("rgb.npz", npz_bytes(x_train=x, y_train=np.array([0, 1])), max_bytes=LIMIT)

    assert up.input_shape == (3, 6, 7)
    np.testing.assert_array_equal(up.arrays["x_train"][1, 2], x[1, :, :, 2])


def test_float_targets_mean_regression():
    up = validate_upload("r.npz", npz_bytes(**good(y_train=np.linspace(0, 1, 6))), max_bytes=LIMIT)

    assert up.task == "regression" and up.num_classes is None
    assert up.arrays["y_train"].dtype == np.float32


def test_task_can_force_classification_of_integral_float_labels():
    y = np.array([0.0, 1.0, 2.0, 0.0, 1.0, 2.0])
    up = validate_upload(
        "c.npz", npz_bytes(**good(y_train=y)), task="classification", max_bytes=LIMIT
    )

    assert up.num_classes == 3 and up.arrays["y_train"].dtype == np.int64


def test_csv_label_column_defaults_to_the_last_and_can_be_named():
    content = b"label,a,b\n1,0.5,0\n0,1.5,1\n1,2.5,1\n"

    by_name = validate_upload("t.csv", content, label_column="label", max_bytes=LIMIT)
    by_default = validate_upload("t.csv", content, max_bytes=LIMIT)

    np.testing.assert_array_equal(by_name.arrays["y_train"], [1, 0, 1])
    np.testing.assert_array_equal(by_name.arrays["x_train"], [[0.5, 0], [1.5, 1], [2.5, 1]])
    np.testing.assert_array_equal(by_default.arrays["y_train"], [0, 1, 1])
    np.testing.assert_array_equal(by_default.arrays["x_train"], [[1, 0.5], [0, 1.5], [1, 2.5]])


# --- refusals: npz ------------------------------------------------------------------------------


def test_refuses_content_over_the_size_limit():
    assert "over the limit of 100 bytes (GRADQ_MAX_DATASET_BYTES)" in refused(
        npz_bytes(**good()), max_bytes=100
    )


def test_refuses_arrays_that_expand_over_the_size_limit():
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_train=np.zeros((1000, 100)), y_train=np.zeros(1000, np.int64))
    content = buffer.getvalue()

    assert "arrays expand to" in refused(content, max_bytes=len(content) + 10)


def test_refuses_an_unknown_file_type():
    assert "must end in .npz or .csv" in refused(b"abc", filename="set.parquet")


def test_refuses_a_file_that_is_not_an_npz_archive():
    assert "not a readable .npz archive" in refused(b"PK\x03\x04 not really a zip")


def test_refuses_a_pickled_object_array_without_unpickling_it():
    content = npz_bytes(**good(x_train=np.array([{"a": 1}] * 6, dtype=object)))

    assert "x_train: object arrays (pickled data) are not accepted" in refused(content)


def test_refuses_a_missing_training_array():
    assert "y_train: missing" in refused(npz_bytes(x_train=np.ones((3, 2))))


def test_refuses_unexpected_array_names():
    assert "weights: unexpected array" in refused(npz_bytes(**good(weights=np.ones(3))))


def test_refuses_x_test_without_y_test():
    assert "y_test: missing while x_test is present" in refused(
        npz_bytes(**good(x_test=np.ones((2, 3), np.float32)))
    )


def test_refuses_non_numeric_features():
    assert "x_train: dtype <U1 is not numeric" in refused(
        npz_bytes(**good(x_train=np.array([["a"]] * 6)))
    )


def test_refuses_non_numeric_labels():
    assert "y_train: dtype <U3 is not numeric" in refused(
        npz_bytes(**good(y_train=np.array(["cat"] * 6)))
    )


def test_refuses_features_of_the_wrong_rank():
    assert "x_train: expected 2 to 4 dimensions" in refused(npz_bytes(**good(x_train=np.ones(6))))


def test_refuses_an_empty_training_set():
    content = npz_bytes(x_train=np.ones((0, 3)), y_train=np.zeros(0, np.int64))

    assert "x_train: has no samples" in refused(content)


def test_refuses_nan_or_infinite_features():
    x = np.ones((6, 3), np.float32)
    x[4, 1] = np.nan

    assert "x_train: samples contain NaN or infinity (first at index 4)" in refused(
        npz_bytes(**good(x_train=x))
    )


def test_refuses_features_too_large_for_float32():
    x = np.ones((6, 3))
    x[0, 0] = 1e300

    assert "x_train: values too large for float32" in refused(npz_bytes(**good(x_train=x)))


def test_refuses_nan_regression_targets():
    y = np.array([0.5, np.inf, 1, 2, 3, 4])

    assert "y_train: contains NaN or infinity" in refused(npz_bytes(**good(y_train=y)))


def test_refuses_labels_and_samples_of_different_lengths():
    assert "y_train: has 5 entries but x_train has 6 samples" in refused(
        npz_bytes(**good(y_train=np.array([0, 1, 2, 0, 1])))
    )


def test_refuses_negative_labels():
    assert "y_train: labels must be in [0, C), found -1" in refused(
        npz_bytes(**good(y_train=np.array([0, 1, -1, 0, 1, 2])))
    )


def test_refuses_a_class_without_samples():
    message = refused(npz_bytes(**good(y_train=np.array([0, 1, 3, 0, 1, 3]))))

    assert "y_train: classes must be 0..3 with at least one sample each; no sample of class 2" in (
        message
    )


def test_refuses_absurd_numbers_of_classes():
    assert "implies 1000001 classes" in refused(
        npz_bytes(**good(y_train=np.array([0, 1, 1_000_000, 0, 1, 2])))
    )


@pytest.mark.parametrize(
    ("y", "shown"),
    [
        (np.array([0, 1, 2, 0, 1, 1e30]), "label 1e+30 implies 1e+30 classes"),
        (np.array([0, 1, 2, 0, 1, 1e19]), "label 1e+19 implies 1e+19 classes"),
        (np.array([0, 1, 2, 0, 1, 2**64 - 1], np.uint64), f"label {2**64 - 1} implies {2**64}"),
    ],
    ids=["1e30", "1e19", "uint64 max"],
)
def test_labels_beyond_int64_are_refused_with_their_value_not_numpys_message(y, shown):
    # the cast to int64 made them negative, and bincount's message was the answer
    assert f"y_train: {shown}" in refused(npz_bytes(**good(y_train=y)), task="classification")


def test_csv_integer_labels_beyond_float64s_exact_range_are_targets_not_wrapped_classes():
    content = b"a,label\n1,0\n2,99999999999999999999999\n"
    # was "labels must be in [0, C), found -9223372036854775808"
    assert "y_train: label 1e+23 implies 1e+23 classes" in refused(
        content, "t.csv", task="classification"
    )
    upload = validate_upload("t.csv", content, max_bytes=LIMIT)
    assert upload.task == "regression"
    np.testing.assert_array_equal(upload.arrays["y_train"], np.array([0, 1e23], np.float32))


def test_refuses_multi_column_class_labels():
    assert "y_train: class labels must be one integer per sample" in refused(
        npz_bytes(**good(y_train=np.zeros((6, 2), np.int64)))
    )


def test_refuses_fractional_labels_when_classification_is_asked_for():
    y = np.array([0.5, 1, 2, 0, 1, 2])

    assert "y_train: classification needs integer labels" in refused(
        npz_bytes(**good(y_train=y)), task="classification"
    )


def test_refuses_an_unknown_task():
    assert "task must be 'classification' or 'regression'" in refused(
        npz_bytes(**good()), task="rank"
    )


def test_refuses_test_features_of_another_shape():
    content = npz_bytes(**good(x_test=np.ones((2, 4), np.float32), y_test=np.array([0, 1])))

    assert "x_test: samples have shape (4,), but x_train's have (3,)" in refused(content)


def test_refuses_test_labels_outside_the_training_classes():
    content = npz_bytes(**good(x_test=np.ones((2, 3), np.float32), y_test=np.array([0, 7])))

    assert "y_test: label 7 is not a class of y_train (0..2)" in refused(content)


def test_refuses_test_labels_of_the_wrong_length():
    content = npz_bytes(**good(x_test=np.ones((2, 3), np.float32), y_test=np.array([0, 1, 2])))

    assert "y_test: has 3 entries but x_test has 2 samples" in refused(content)


def test_refuses_images_with_too_many_channels_either_way():
    content = npz_bytes(**good(x_train=np.zeros((6, 8, 8, 8), np.uint8)))

    assert "x_train: images must be (n, c, h, w) or (n, h, w, c)" in refused(content)


# --- refusals: csv ------------------------------------------------------------------------------


def test_refuses_csv_that_is_not_utf8():
    message = refused(b"a,b\n1,2\n3,\xff\n", filename="t.csv")
    assert "line 3, column 2: the CSV is not UTF-8 text (byte 0xff)" in message


def test_refuses_an_empty_csv():
    assert "the CSV is empty" in refused(b"\n\n", filename="t.csv")


def test_refuses_csv_without_a_header_row():
    assert "the first row must be a header" in refused(b"1,2\n3,4\n", filename="t.csv")


def test_refuses_csv_with_a_single_column():
    assert "at least 2 columns" in refused(b"y\n1\n2\n", filename="t.csv")


def test_refuses_csv_with_repeated_column_names():
    assert "column 2: header name 'a' is empty or repeated" in refused(
        b"a,a,y\n1,2,0\n", filename="t.csv"
    )


def test_refuses_csv_without_data_rows():
    assert "header but no data rows" in refused(b"a,y\n", filename="t.csv")


def test_refuses_an_unknown_label_column():
    message = refused(b"a,y\n1,0\n", filename="t.csv", label_column="target")

    assert "label_column: 'target' is not a column of the CSV (columns: a, y)" in message


def test_refuses_ragged_csv_rows():
    assert "line 3, column 3: has 3 values, the header has 2 columns" in refused(
        b"a,y\n1,0\n2,1,5\n", filename="t.csv"
    )


def test_refuses_non_numeric_csv_cells_naming_column_and_line():
    assert "line 3, column 1 ('a'): 'n/a' is not a number" in refused(
        b"a,y\n1,0\nn/a,1\n", filename="t.csv"
    )


def test_refuses_non_finite_csv_cells():
    assert "line 2, column 1 ('a'): 'inf' is not a finite number" in refused(
        b"a,y\ninf,0\n1,1\n", filename="t.csv"
    )
