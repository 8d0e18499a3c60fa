"""load_dataset: built-in and local sets, deterministic splits, normalization from training only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from worker.datasets import Dataset, DatasetError, apply_preprocessing, load_dataset
from worker.datasets.base import stratified_split
from worker.datasets.builtin import digits


def test_digits_is_tabular_64_features_with_ten_named_classes():
    ds = load_dataset({"name": "digits", "validation_split": 0.1})

    assert isinstance(ds, Dataset)
    assert ds.input_shape == (64,) and ds.x_train.shape[1:] == (64,)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.classes == [str(d) for d in range(10)] and ds.num_classes == 10
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 1797
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0  # pixels 0..16 scaled by 1/16
    assert ds.preprocessing["normalize"] == "scale" and ds.preprocessing["divisor"] == 16.0


def test_digits_as_image_is_channels_first_8x8():
    ds = load_dataset({"name": "digits", "as_image": True})

    assert ds.input_shape == (1, 8, 8) and ds.x_test.shape[1:] == (1, 8, 8)


def test_digits_test_split_is_stratified_80_20_and_fixed():
    raw = digits()

    assert len(raw.x_test) == pytest.approx(0.2 * 1797, abs=10)
    per_class = np.bincount(raw.y_test) / np.bincount(np.concatenate([raw.y_train, raw.y_test]))
    np.testing.assert_allclose(per_class, 0.2, atol=0.02)
    np.testing.assert_array_equal(digits().y_test, raw.y_test)


def test_validation_split_is_taken_from_training_split_and_fixed_by_seed():
    a = load_dataset({"name": "digits", "validation_split": 0.2}, seed=3)
    b = load_dataset({"name": "digits", "validation_split": 0.2}, seed=3)
    c = load_dataset({"name": "digits", "validation_split": 0.2}, seed=4)
    no_val = load_dataset({"name": "digits", "validation_split": 0.0})

    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.y_val, c.y_val)
    np.testing.assert_array_equal(a.x_test, no_val.x_test)  # the test split is never touched
    assert len(a.x_train) + len(a.x_val) == len(no_val.x_train)
    assert no_val.x_val is None and no_val.y_val is None


def test_standardize_statistics_come_from_the_training_part_only():
    ds = load_dataset({"name": "blobs", "normalize": "standardize", "validation_split": 0.3})

    # the training part is exactly standardized; validation and test are not (own statistics)
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, atol=1e-4)
    raw_train = ds.x_train * np.float32(ds.preprocessing["std"]) + np.float32(
        ds.preprocessing["mean"]
    )
    all_raw = np.concatenate([raw_train, _raw(ds.x_val, ds), _raw(ds.x_test, ds)])
    assert not np.allclose(ds.preprocessing["mean"], all_raw.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(ds.preprocessing["mean"], raw_train.mean(axis=0), atol=1e-4)


def _raw(x, ds):
    return x * np.float32(ds.preprocessing["std"]) + np.float32(ds.preprocessing["mean"])


def test_preprocessing_is_json_and_replays_on_prediction_inputs():
    ds = load_dataset({"name": "digits", "as_image": True, "normalize": "standardize"})
    raw_test = digits(as_image=True).x_test
    stored = json.loads(json.dumps(ds.preprocessing))

    np.testing.assert_array_equal(apply_preprocessing(raw_test, stored), ds.x_test)
    flat = raw_test.reshape(len(raw_test), 64)  # (n, 64) is reshaped to the stored input shape
    np.testing.assert_array_equal(apply_preprocessing(flat, stored), ds.x_test)


def test_apply_preprocessing_refuses_inputs_of_the_wrong_size():
    ds = load_dataset({"name": "digits"})

    with pytest.raises(DatasetError, match=r"shape \(n, 64\).*got \(3, 63\)"):
        apply_preprocessing(np.zeros((3, 63)), ds.preprocessing)


@pytest.mark.parametrize("name", ["blobs", "spirals"])
def test_synthetic_sets_follow_their_parameters_and_seed(name):
    spec = {"name": name, "size": 200, "classes": 4, "seed": 7, "noise": 0.1}
    ds = load_dataset(spec)
    again = load_dataset(dict(spec))
    other = load_dataset({**spec, "seed": 8})

    assert ds.num_classes == 4 and ds.input_shape == (2,)
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 200
    assert set(np.unique(ds.y_train)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    assert not np.array_equal(ds.x_train, other.x_train)


def test_spirals_are_not_linearly_separable():
    ds = load_dataset({"name": "spirals", "size": 1000, "noise": 0.0, "validation_split": 0})
    x = np.c_[ds.x_train, np.ones(len(ds.x_train))]
    w, *_ = np.linalg.lstsq(x, 2.0 * ds.y_train - 1, rcond=None)
    accuracy = np.mean((x @ w > 0) == (ds.y_train == 1))

    assert accuracy < 0.8


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "cifar"}, "dataset.name must be one of"),
        ({"name": "digits", "id": "ds_x"}, "exactly one of"),
        ({"name": "digits", "validation_split": 1.0}, "validation_split must be in"),
        ({"name": "digits", "normalize": "minmax"}, "normalize must be one of"),
        ({"name": "digits", "size": 10}, "dataset.size: not an option"),
        ({"name": "blobs", "size": -5}, "dataset.size must be an integer"),
        ({"name": "spirals", "noise": "lots"}, "dataset.noise must be a number"),
        ({"id": "ds_abc"}, "need a Redis connection"),
        ({"path": "/nonexistent/file.npz"}, "dataset.path: no such file"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(spec, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(spec)


def test_local_npz_is_validated_like_an_upload_and_loaded(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "set.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (60, 12, 12), dtype=np.uint8),
        y_train=np.arange(60) % 3,
        x_test=rng.integers(0, 256, (9, 12, 12), dtype=np.uint8),
        y_test=np.arange(9) % 3,
    )

    ds = load_dataset({"path": str(path)})

    assert ds.input_shape == (1, 12, 12) and ds.num_classes == 3
    assert ds.preprocessing == {"normalize": "scale", "input_shape": [1, 12, 12], "divisor": 255.0}
    assert ds.x_test.shape == (9, 1, 12, 12) and ds.x_train.max() <= 1.0


def test_local_csv_regression_targets_are_float32(tmp_path):
    path = tmp_path / "houses.csv"
    path.write_text("rooms,area,price\n3,70,1.5\n4,90,2.25\n2,50,1.0\n5,120,3.5\n")

    ds = load_dataset({"path": str(path), "validation_split": 0})

    assert ds.num_classes is None and ds.task == "regression"
    assert ds.y_train.dtype == np.float32
    np.testing.assert_allclose(ds.y_train, [1.5, 2.25, 1.0, 3.5])
    assert ds.preprocessing["normalize"] == "standardize"


def test_local_file_refusals_name_the_array(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((4, 3)), y_train=np.array([0, 1, 2]))

    with pytest.raises(DatasetError, match="y_train: has 3 entries but x_train has 4"):
        load_dataset({"path": str(path)})


def test_stratified_split_holds_out_the_rounded_fraction_in_class_proportions():
    y = np.repeat(np.arange(10), 5)  # 10 classes of 5: 10% is 5 samples, not 0.5 per class

    keep, held = stratified_split(y, 0.1, seed=0)

    assert len(held) == 5 and len(keep) == 45
    assert np.bincount(y[held], minlength=10).max() == 1
    np.testing.assert_array_equal(np.sort(np.concatenate([keep, held])), np.arange(50))
    assert set(np.unique(y[keep])) == set(range(10))  # every class keeps samples


FINGERPRINT = """
import hashlib, sys
from worker.datasets import load_dataset
spec = {"name": sys.argv[1], "validation_split": 0.2, "normalize": "standardize"}
ds = load_dataset(spec, seed=11)
digest = hashlib.sha256()
for array in (ds.x_train, ds.y_train, ds.x_val, ds.y_val, ds.x_test, ds.y_test):
    digest.update(array.tobytes())
print(digest.hexdigest())
"""


@pytest.mark.integration
@pytest.mark.parametrize("name", ["digits", "spirals"])
def test_two_processes_load_bit_identical_arrays(name):
    import subprocess
    import sys

    from tests.harness import REPO_ROOT

    digests = {
        subprocess.run(
            [sys.executable, "-c", FINGERPRINT, name],
            cwd=REPO_ROOT,
            env={"PYTHONPATH": str(REPO_ROOT), "PYTHONHASHSEED": str(hash_seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in (1, 2)
    }

    assert len(digests) == 1 and len(digests.pop().strip()) == 64
