"""losses.check_targets: which outputs and targets each loss can train, decided before training."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib import losses


@pytest.mark.parametrize(
    ("name", "output_shape", "num_classes", "target_shape", "target_range"),
    [
        ("cross_entropy", (10,), 10, (), None),
        ("binary_cross_entropy", (1,), 2, (), None),
        ("binary_cross_entropy", (3,), None, (3,), (0.0, 1.0)),
        ("mse", (1,), None, (), (-5.0, 5.0)),
        ("mse", (2,), None, (2,), None),
    ],
)
def test_workable_pairs_pass_and_the_loss_then_trains_on_such_targets(
    name, output_shape, num_classes, target_shape, target_range
):
    losses.check_targets(name, output_shape, num_classes, target_shape, target_range)
    rng = np.random.default_rng(0)
    outputs = rng.standard_normal((4, *output_shape)).astype(np.float32)
    if num_classes is not None:
        targets = np.arange(4) % num_classes
    else:
        low, high = target_range or (0.0, 1.0)
        targets = rng.uniform(low, high, (4, *target_shape)).astype(np.float32)
    assert np.isfinite(losses.get(name).forward(outputs, targets))


@pytest.mark.parametrize(
    ("name", "output_shape", "num_classes", "target_shape", "target_range", "words"),
    [
        ("mse", (10,), 10, (), None, "10 classes"),
        ("mse", (1,), 10, (), None, "10 classes"),
        ("mse", (3,), None, (), None, "1 value(s)"),
        ("binary_cross_entropy", (1,), 10, (), None, "has 10"),
        ("binary_cross_entropy", (2,), 2, (), None, "[2]"),
        ("binary_cross_entropy", (1,), None, (), (0.0, 9.0), "[0.0, 9.0]"),
        ("cross_entropy", (7,), 10, (), None, "[10]"),
        ("cross_entropy", (1,), None, (), None, "class labels"),
        ("cross_entropy", (10, 1, 1), 10, (), None, "[10, 1, 1]"),
    ],
)
def test_unworkable_pairs_raise_naming_the_loss(
    name, output_shape, num_classes, target_shape, target_range, words
):
    with pytest.raises(ValueError) as error:
        losses.check_targets(name, output_shape, num_classes, target_shape, target_range)
    assert str(error.value).startswith("loss: ") and words in str(error.value)


def test_from_spec_takes_a_name_or_an_object_whose_null_options_are_defaults():
    assert isinstance(losses.from_spec("mse"), losses.MeanSquaredError)
    smoothed = losses.from_spec({"type": "cross_entropy", "label_smoothing": 0.1})
    assert smoothed.label_smoothing == 0.1
    assert losses.from_spec({"type": "cross_entropy", "label_smoothing": None}).label_smoothing == 0
    with pytest.raises(ValueError, match="loss"):
        losses.from_spec({"label_smoothing": 0.1})


@pytest.mark.parametrize(
    ("name", "output_shape", "expected"),
    [
        ("cross_entropy", (10,), True),
        ("binary_cross_entropy", (1,), True),
        ("binary_cross_entropy", (3,), False),
        ("mse", (1,), False),
    ],
)
def test_has_accuracy_says_whether_count_correct_counts(name, output_shape, expected):
    outputs = np.zeros((4, *output_shape), np.float32)
    targets = np.zeros(4, np.int64) if name == "cross_entropy" else np.zeros((4, *output_shape))

    counted = losses.get(name).count_correct(outputs, targets)

    assert losses.has_accuracy(name, output_shape) is expected
    assert (counted is not None) is expected


def test_fit_refuses_early_stopping_on_val_accuracy_for_mse_before_training():
    import nnlib

    model = nnlib.build_model({"layers": [{"type": "dense", "units": 1}]}, (2,))
    before = model.state_dict()
    x, y = np.ones((4, 2), np.float32), np.ones(4, np.float32)

    with pytest.raises(ValueError, match="'val_accuracy' needs a loss with an accuracy"):
        nnlib.fit(
            model, "mse", {"type": "sgd", "lr": 0.1}, x, y, epochs=1, batch_size=2,
            x_val=x, y_val=y, early_stopping={"monitor": "val_accuracy"},
        )  # fmt: skip

    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())
