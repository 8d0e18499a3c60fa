"""Training: the gradient of one batch, evaluation, and the single-process trainer ``fit``.

``fit`` draws its batches from ``nnlib.batching.global_batches`` like the distributed worker does,
so a one-shard job and a local ``fit`` with the same seed take the same steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nnlib import losses, optimizers, schedules
from nnlib.batching import global_batches, min_batch_for, steps_per_epoch

# Sign of each monitored metric: +1 when higher is better.
_MONITORS = {"val_loss": -1.0, "val_accuracy": 1.0, "train_loss": -1.0}


def loss_and_gradients(model, loss, x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
    """Mean loss of the batch and the gradients of that mean (the model's own arrays).

    Forward in training mode, loss, backward; nothing is updated except batchnorm running stats.
    Copy the gradients if you keep them past the next call.
    """
    outputs = model.forward(x, training=True)
    value = loss.forward(outputs, y)
    model.backward(loss.backward(), input_grad=False)  # dL/dx is not needed to train
    return value, model.gradients()


def evaluate(model, loss, x: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> dict:
    """``{"loss", "accuracy"}`` over ``(x, y)`` in inference mode (accuracy None for regression)."""
    if len(x) != len(y):
        raise ValueError(f"y: {len(y)} samples, x has {len(x)}")
    if len(x) == 0:
        raise ValueError("x: no samples to evaluate")
    total, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        outputs = model.forward(xb, training=False)
        total += loss.forward(outputs, yb) * len(xb)
        hits = loss.count_correct(outputs, yb)
        correct = None if hits is None or correct is None else correct + hits
    accuracy = None if correct is None else correct / len(x)
    return {"loss": total / len(x), "accuracy": accuracy}


@dataclass
class History:
    """Per-epoch metrics; ``epochs[i]`` has epoch, train_loss, val_loss, val_accuracy, seconds,
    samples_per_second (and val_seconds). ``best_epoch`` is set when early stopping monitored."""

    epochs: list[dict] = field(default_factory=list)
    steps: int = 0
    stopped_early: bool = False
    stopped_by_callback: bool = False
    best_epoch: int | None = None


@dataclass
class _EarlyStopping:
    monitor: str
    patience: int
    min_delta: float
    restore_best: bool
    best: float = -math.inf  # of sign * metric
    best_epoch: int | None = None
    best_state: dict | None = None
    waited: int = 0

    def update(self, epoch: int, metrics: dict, model) -> bool:
        """Record the epoch; True when training should stop."""
        value = metrics[self.monitor]
        if value is None:
            raise ValueError(f"early_stopping.monitor: {self.monitor!r} is not available here")
        score = _MONITORS[self.monitor] * value
        if self.best_epoch is None or score > self.best + self.min_delta:
            self.best, self.best_epoch, self.waited = score, epoch, 0
            if self.restore_best:
                self.best_state = model.state_dict()  # already copies
            return False
        self.waited += 1
        return self.waited >= self.patience


def early_stopping_from_spec(
    spec: dict, has_validation: bool, has_accuracy: bool = True
) -> _EarlyStopping:
    """Validate ``{"patience", "min_delta", "monitor", "restore_best"}`` (null: the default).

    ``has_accuracy``: the loss counts correct answers (``losses.has_accuracy``), so
    ``val_accuracy`` exists.
    """
    allowed = {"patience", "min_delta", "monitor", "restore_best"}
    extra = sorted(set(spec) - allowed)
    if extra:
        raise ValueError(f"early_stopping: unknown field(s) {extra}")
    spec = {k: v for k, v in spec.items() if v is not None}  # null: the default
    patience = spec.get("patience", 3)
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ValueError(f"early_stopping.patience must be an integer >= 1, got {patience!r}")
    min_delta = spec.get("min_delta", 0.0)
    if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or min_delta < 0:
        raise ValueError(f"early_stopping.min_delta must be a number >= 0, got {min_delta!r}")
    monitor = spec.get("monitor", "val_loss")
    if monitor not in _MONITORS:
        raise ValueError(f"early_stopping.monitor: unknown {monitor!r}; expected {list(_MONITORS)}")
    if monitor.startswith("val_") and not has_validation:
        raise ValueError(f"early_stopping.monitor: {monitor!r} needs validation data")
    if monitor == "val_accuracy" and not has_accuracy:
        raise ValueError(
            "early_stopping.monitor: 'val_accuracy' needs a loss with an accuracy (cross_entropy,"
            " or binary_cross_entropy with one output); monitor val_loss instead"
        )
    restore = spec.get("restore_best", True)
    if not isinstance(restore, bool):
        raise ValueError(f"early_stopping.restore_best must be true or false, got {restore!r}")
    return _EarlyStopping(monitor, patience, float(min_delta), restore)


def fit(
    model,
    loss,
    optimizer,
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    seed: int = 0,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    schedule: dict | Callable[[int], float] | None = None,
    early_stopping: dict | None = None,
    callback: Callable[[dict], bool | None] | None = None,
) -> History:
    """Minibatch training; ``loss`` a name or loss object, ``optimizer`` a spec or optimizer.

    ``callback`` gets ``{"type": "step", epoch, step, loss, lr}`` after every update and
    ``{"type": "epoch", **metrics}`` after every epoch; returning False stops training (a stop
    during an epoch still reports that epoch). With early stopping the best weights are restored.
    """
    _check_positive_int("epochs", epochs)
    _check_positive_int("batch_size", batch_size)
    y_train = np.asarray(y_train)
    y_val = None if y_val is None else np.asarray(y_val)
    if len(x_train) != len(y_train):
        raise ValueError(f"y_train: {len(y_train)} samples, x_train has {len(x_train)}")
    if len(x_train) == 0:
        raise ValueError("x_train: no samples")
    has_val = x_val is not None and y_val is not None
    loss = losses.get(loss) if isinstance(loss, str) else loss
    if isinstance(optimizer, dict):
        optimizer = optimizers.build(optimizer, model.parameters())
    x_train = _as_model_dtype(model, x_train)
    x_val = _as_model_dtype(model, x_val) if has_val else None
    n = len(x_train)
    min_batch = min_batch_for(model.layers, 1)
    if not callable(schedule):
        steps = epochs * steps_per_epoch(n, batch_size, min_batch)
        schedule = schedules.build(schedule, optimizer.lr, steps)
    stopper = None
    if early_stopping:
        accuracy = losses.has_accuracy(getattr(loss, "name", ""), tuple(model.output_shape))
        stopper = early_stopping_from_spec(early_stopping, has_val, accuracy)

    history = History()
    step = 0
    for epoch in range(epochs):
        started = time.perf_counter()
        seen, loss_sum, stop = 0, 0.0, False
        for batch in global_batches(n, batch_size, seed, epoch, min_batch):
            value, grads = loss_and_gradients(model, loss, x_train[batch], y_train[batch])
            if not math.isfinite(value):
                # 1-based, as every epoch and step a user sees
                raise FloatingPointError(
                    f"training loss is {value} at epoch {epoch + 1} step {step + 1}"
                )
            lr = schedule(step)
            optimizer.step(grads, lr=lr)
            step += 1
            seen += len(batch)
            loss_sum += value * len(batch)
            if callback is not None:
                event = {"type": "step", "epoch": epoch, "step": step, "loss": value, "lr": lr}
                if callback(event) is False:
                    stop = history.stopped_by_callback = True
                    break
        seconds = time.perf_counter() - started
        metrics = {
            "epoch": epoch,
            "train_loss": loss_sum / seen,
            "val_loss": None,
            "val_accuracy": None,
            "seconds": seconds,
            "samples_per_second": seen / seconds if seconds > 0 else None,
        }
        if has_val:
            started = time.perf_counter()
            result = evaluate(model, loss, x_val, y_val, batch_size=max(batch_size, 1024))
            metrics.update(val_loss=result["loss"], val_accuracy=result["accuracy"])
            metrics["val_seconds"] = time.perf_counter() - started
        history.epochs.append(metrics)
        history.steps = step
        if stopper is not None and stopper.update(epoch, metrics, model):
            history.stopped_early = stop = True
        if callback is not None and callback({"type": "epoch", **metrics}) is False:
            history.stopped_by_callback = stop = True
        if stop:
            break
    if stopper is not None:
        history.best_epoch = stopper.best_epoch
        if stopper.best_state is not None:
            model.load_state_dict(stopper.best_state)
    return history


def _as_model_dtype(model, x: np.ndarray) -> np.ndarray:
    # One conversion up front (e.g. uint8 or float64 inputs) instead of one per batch.
    x = np.asarray(x)
    return x if x.dtype == model.dtype else x.astype(model.dtype)


def _check_positive_int(field: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{field} must be an integer >= 1, got {value!r}")
