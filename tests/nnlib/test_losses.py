"""Losses: exact gradients (float64 finite differences), stability at huge logits, dtype kept."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib import losses
from nnlib.gradcheck import numerical_gradient, relative_error


def _cases():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4)) * 3
    labels = np.array([0, 3, 1, 1, 2])
    yield "cross_entropy", {}, logits, labels
    yield "cross_entropy", {"label_smoothing": 0.1}, logits, labels
    yield "mse", {}, rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    yield "mse", {}, rng.normal(size=(6, 1)), rng.normal(size=6)  # (n,) targets for (n, 1) outputs
    yield "binary_cross_entropy", {}, rng.normal(size=(6, 1)) * 4, np.array([0, 1, 1, 0, 1, 0.5])


@pytest.mark.parametrize("name,options,outputs,targets", list(_cases()))
def test_backward_matches_finite_differences_in_float64(name, options, outputs, targets):
    loss = losses.get(name, **options)
    outputs = outputs.copy()

    loss.forward(outputs, targets)
    analytic = loss.backward()
    fresh = losses.get(name, **options)
    numeric = numerical_gradient(lambda: fresh.forward(outputs, targets), outputs)

    assert analytic.shape == outputs.shape
    assert relative_error(analytic, numeric) < 1e-6


def test_cross_entropy_value_is_mean_negative_log_probability_of_the_label():
    # softmax rows: [1/4, 3/4] and [4/5, 1/5]
    logits = np.array([[0.0, np.log(3.0)], [np.log(4.0), 0.0]])
    value = losses.get("cross_entropy").forward(logits, np.array([1, 1]))

    assert value == pytest.approx((-np.log(3 / 4) - np.log(1 / 5)) / 2)


def test_label_smoothing_mixes_in_the_uniform_distribution():
    logits = np.array([[1.0, 2.0, 0.5]])
    logp = logits - np.log(np.exp(logits).sum())
    expected = -(0.8 * logp[0, 1] + 0.2 / 3 * logp.sum())

    assert losses.get("cross_entropy", label_smoothing=0.2).forward(logits, np.array([1])) == (
        pytest.approx(expected)
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_finite_and_exact_at_huge_logits(dtype):
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4 - 2.0, 1e4]], dtype=dtype)
    loss = losses.get("cross_entropy")

    value = loss.forward(logits, np.array([0, 1]))
    grad = loss.backward()

    # Row 0 is certain and right (loss 0); row 1 puts e^-2 / (1 + e^-2) on the label.
    assert value == pytest.approx((0.0 + 2.0 + np.log1p(np.exp(-2.0))) / 2, rel=1e-6)
    assert np.all(np.isfinite(grad))
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-6)


def test_binary_cross_entropy_is_finite_at_huge_logits():
    loss = losses.get("binary_cross_entropy")
    value = loss.forward(np.array([[1e4], [-1e4], [1e4]], dtype=np.float32), np.array([1, 0, 0]))

    assert value == pytest.approx(1e4 / 3, rel=1e-6)
    assert np.all(np.isfinite(loss.backward()))


@pytest.mark.parametrize("name", losses.NAMES)
def test_float32_outputs_give_float32_gradients(name):
    outputs = np.random.default_rng(1).normal(size=(4, 1)).astype(np.float32)
    targets = np.array([0, 0, 0, 0]) if name == "cross_entropy" else np.array([0.0, 1.0, 1.0, 0.0])
    loss = losses.get(name)

    loss.forward(outputs, targets)

    assert loss.backward().dtype == np.float32


def test_unknown_names_and_options_are_rejected_by_name():
    with pytest.raises(ValueError, match="'hinge'"):
        losses.get("hinge")
    with pytest.raises(ValueError, match="smoothing"):
        losses.get("mse", smoothing=0.1)
    with pytest.raises(ValueError, match="label_smoothing.*1.5"):
        losses.get("cross_entropy", label_smoothing=1.5)


def test_labels_out_of_range_or_of_the_wrong_kind_are_rejected():
    loss = losses.get("cross_entropy")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        loss.forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="integer labels"):
        loss.forward(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="rows"):
        loss.forward(np.zeros((2, 3)), np.array([0, 1, 2]))
