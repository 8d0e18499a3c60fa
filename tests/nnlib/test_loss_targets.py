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
