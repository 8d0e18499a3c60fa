"""Training: the partition identity behind data parallelism, determinism, fit's contract."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib import build_model, evaluate, fit, loss_and_gradients, losses, optimizers
from nnlib.batching import global_batches

MLP = {
    "layers": [{"type": "dense", "units": 16, "activation": "tanh"}, {"type": "dense", "units": 3}]
}


def blobs(n: int, seed: int = 0, dims: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.normal(size=(n, dims)) + 2.0 * np.eye(3, dims)[y]
    return x, y


def digits_split():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1437], order[1437:]
    return x[train], y[train], x[test], y[test]


@pytest.mark.parametrize("loss_name", ["cross_entropy", "mse"])
def test_batch_gradient_is_the_size_weighted_mean_of_any_partition(loss_name):
    """The identity data-parallel training rests on, for models without dropout or batchnorm.

    Batchnorm breaks it in training mode: each part is normalised by its own statistics, so
    N shards optimise a different (per-shard statistics) objective. It holds with batchnorm in
    eval mode (fixed running statistics). Dropout holds it only if every part gets the mask rows
    it would get in the full batch.
    """
    x, y = blobs(13, dims=5)
    targets = y if loss_name == "cross_entropy" else np.eye(3)[y]
    model = build_model(MLP, (5,), seed=1, dtype=np.float64)
    loss = losses.get(loss_name)

    full_loss, full = loss_and_gradients(model, loss, x, targets)
    full = {k: v.copy() for k, v in full.items()}
    weighted_loss, weighted = 0.0, {k: np.zeros_like(v) for k, v in full.items()}
    for part in (slice(0, 5), slice(5, 6), slice(6, 13)):  # uneven parts: 5, 1, 7
        part_loss, grads = loss_and_gradients(model, loss, x[part], targets[part])
        size = part.stop - part.start
        weighted_loss += part_loss * size / 13
        for k, g in grads.items():
            weighted[k] += g * (size / 13)

    assert weighted_loss == pytest.approx(full_loss, rel=1e-12)
    for k in full:
        np.testing.assert_allclose(weighted[k], full[k], rtol=1e-10, atol=1e-14)


BN_MLP = {"layers": [{"type": "dense", "units": 6}, {"type": "batchnorm"},
                     {"type": "tanh"}, {"type": "dense", "units": 3}]}  # fmt: skip


def _partition_gap(model, x, y, training: bool) -> float:
    """Largest |full-batch gradient - size-weighted mean of part gradients| over parameters."""
    loss = losses.get("cross_entropy")

    def gradients(xs, ys):
        loss.forward(model.forward(xs, training=training), ys)
        model.backward(loss.backward())
        return {k: v.copy() for k, v in model.gradients().items()}

    full = gradients(x, y)
    first, second = gradients(x[:4], y[:4]), gradients(x[4:], y[4:])
    gaps = []
    for k in full:
        weighted = (4 * first[k] + (len(x) - 4) * second[k]) / len(x)
        gaps.append(float(np.max(np.abs(weighted - full[k]))))
    return max(gaps)


def test_with_batchnorm_the_identity_holds_in_eval_mode_but_not_with_per_shard_statistics():
    x, y = blobs(12, dims=5)
    model = build_model(BN_MLP, (5,), seed=0, dtype=np.float64)

    assert _partition_gap(model, x, y, training=False) < 1e-12
    assert _partition_gap(model, x, y, training=True) > 1e-4


def test_loss_and_gradients_does_not_update_the_parameters():
    x, y = blobs(8)
    model = build_model(MLP, (5,), seed=0)
    before = model.state_dict()

    loss_and_gradients(model, losses.get("cross_entropy"), x, y)

    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_fit_takes_exactly_the_steps_of_the_global_batches():
    """A one-shard worker (loss_and_gradients + step over global_batches) equals local fit."""
    x, y = blobs(50)
    spec = {"type": "sgd", "lr": 0.1, "momentum": 0.9}
    fitted = build_model(MLP, (5,), seed=2)
    fit(fitted, "cross_entropy", spec, x, y, epochs=2, batch_size=16, seed=7)

    manual = build_model(MLP, (5,), seed=2)
    loss, opt = losses.get("cross_entropy"), optimizers.build(spec, manual.parameters())
    xs = x.astype(np.float32)
    for epoch in range(2):
        for batch in global_batches(50, 16, seed=7, epoch=epoch):
            _, grads = loss_and_gradients(manual, loss, xs[batch], y[batch])
            opt.step(grads)

    for k, v in manual.parameters().items():
        np.testing.assert_array_equal(fitted.parameters()[k], v)


def test_the_same_seed_gives_identical_weights_after_two_epochs():
    x, y = blobs(64)

    def run(seed):
        model = build_model(MLP, (5,), seed=seed)
        fit(model, "cross_entropy", {"type": "adam", "lr": 0.01}, x, y, epochs=2, batch_size=10,
            seed=seed)  # fmt: skip
        return model.parameters()

    first, second, other = run(4), run(4), run(5)

    for k in first:
        np.testing.assert_array_equal(first[k], second[k])
    assert not np.array_equal(first["0.W"], other["0.W"])


def test_fit_reaches_96_percent_on_sklearn_digits():
    x_train, y_train, x_test, y_test = digits_split()
    model = build_model(
        {
            "layers": [
                {"type": "dense", "units": 64, "activation": "relu"},
                {"type": "dense", "units": 10},
            ]
        },
        (64,),
        seed=0,
    )

    history = fit(model, "cross_entropy", {"type": "adam", "lr": 3e-3}, x_train, y_train,
                  epochs=25, batch_size=32, seed=0, x_val=x_test, y_val=y_test)  # fmt: skip

    result = evaluate(model, losses.get("cross_entropy"), x_test, y_test)
    assert result["accuracy"] >= 0.96
    assert history.epochs[-1]["val_accuracy"] == pytest.approx(result["accuracy"])
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]


def test_epoch_metrics_and_callback_events():
    x, y = blobs(40)
    events = []
    history = fit(build_model(MLP, (5,), seed=0), "cross_entropy", {"type": "sgd", "lr": 0.1},
                  x, y, epochs=2, batch_size=16, x_val=x[:10], y_val=y[:10],
                  callback=events.append)  # fmt: skip

    assert [e["type"] for e in events] == ["step"] * 3 + ["epoch"] + ["step"] * 3 + ["epoch"]
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2, 3, 4, 5, 6]
    for row in history.epochs:
        assert set(row) >= {"epoch", "train_loss", "val_loss", "val_accuracy", "seconds",
                            "samples_per_second"}  # fmt: skip
        assert row["seconds"] > 0 and row["samples_per_second"] > 0
        assert 0.0 <= row["val_accuracy"] <= 1.0
    assert history.steps == 6


def test_a_callback_returning_false_stops_training():
    x, y = blobs(40)
    history = fit(build_model(MLP, (5,), seed=0), "cross_entropy", {"type": "sgd", "lr": 0.1},
                  x, y, epochs=5, batch_size=8,
                  callback=lambda e: not (e["type"] == "step" and e["step"] == 3))  # fmt: skip

    assert history.steps == 3
    assert len(history.epochs) == 1 and history.stopped_by_callback


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    x, y = blobs(80)
    # Validation labels unrelated to the inputs: val_loss rises once the model gets confident.
    y_noise = np.random.default_rng(9).integers(0, 3, size=80)
    model = build_model(MLP, (5,), seed=0)
    snapshots = []

    def keep_epoch_weights(event):
        if event["type"] == "epoch":
            snapshots.append(model.state_dict())

    history = fit(model, "cross_entropy", {"type": "adam", "lr": 0.05}, x, y, epochs=50,
                  batch_size=16, x_val=x, y_val=y_noise,
                  early_stopping={"patience": 2, "monitor": "val_loss"},
                  callback=keep_epoch_weights)  # fmt: skip

    val = [row["val_loss"] for row in history.epochs]
    assert history.stopped_early
    assert history.best_epoch == int(np.argmin(val))
    assert len(history.epochs) == history.best_epoch + 1 + 2
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, snapshots[history.best_epoch][k])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
        ({"batch_size": -4}, "batch_size must be an integer >= 1, got -4"),
        ({"early_stopping": {"patience": 0}}, "patience must be an integer >= 1, got 0"),
        ({"early_stopping": {"patients": 2}}, "patients"),
        ({"early_stopping": {"monitor": "val_loss"}}, "'val_loss' needs validation data"),
        ({"early_stopping": {"monitor": "loss"}, "x_val": 1}, "monitor: unknown 'loss'"),
        ({"schedule": {"type": "cosine", "min_lr": 1.0}}, "min_lr must be in"),
    ],
)
def test_bad_arguments_are_refused_naming_field_and_value(kwargs, message):
    x, y = blobs(10)
    args = {"epochs": 1, "batch_size": 4, **kwargs}
    if args.pop("x_val", None):
        args.update(x_val=x, y_val=y)
    with pytest.raises(ValueError, match=message):
        fit(build_model(MLP, (5,)), "cross_entropy", {"type": "sgd", "lr": 0.1}, x, y, **args)


def test_mismatched_lengths_are_refused():
    x, y = blobs(10)
    with pytest.raises(ValueError, match="y_train: 9 samples, x_train has 10"):
        fit(build_model(MLP, (5,)), "mse", {"type": "sgd", "lr": 0.1}, x, y[:9], epochs=1,
            batch_size=4)  # fmt: skip


def test_a_diverging_run_fails_with_the_step():
    x, y = blobs(32)
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(FloatingPointError):
        fit(build_model(MLP, (5,)), "mse", {"type": "sgd", "lr": 1e6}, x * 1e3, np.eye(3)[y],
            epochs=3, batch_size=8)  # fmt: skip
