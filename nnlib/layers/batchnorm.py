"""Batch normalisation over the batch axis (1-D input (N, F)) or batch and space ((N, C, H, W)).

Training normalises with the batch mean and biased variance and updates the buffers
``running = (1 - momentum) * running + momentum * batch_stat`` (running_var gets the unbiased
variance, as in PyTorch); eval normalises with the running statistics.
Parameters gamma, beta (F,) or (C,); buffers running_mean, running_var of the same shape.
"""

from __future__ import annotations

import numpy as np

from nnlib.layers.base import Layer, check_float


class BatchNorm(Layer):
    type_name = "batchnorm"
    fields = ("momentum", "eps")
    batch_statistics = True  # a shard's step normalises with its own slice of the batch

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum = check_float("momentum", momentum, 0.0, 1.0)
        self.eps = check_float("eps", eps, 0.0, 1.0)
        if self.eps == 0.0:
            raise ValueError(f"field 'eps' must be > 0, got {eps!r}")
        self._cache: tuple | None = None

    def output_shape_for(self, input_shape):
        if len(input_shape) not in (1, 3):
            raise ValueError(
                f"field 'type' = 'batchnorm' needs a (features,) or (C, H, W) input, "
                f"got input shape {list(input_shape)}"
            )
        return tuple(input_shape)

    def parameter_shapes(self, input_shape):
        self.output_shape_for(input_shape)
        return {"gamma": (input_shape[0],), "beta": (input_shape[0],)}

    def build(self, input_shape, rng, dtype):
        n = self.parameter_shapes(input_shape)["gamma"][0]
        self.params = {"gamma": np.ones(n, dtype=dtype), "beta": np.zeros(n, dtype=dtype)}
        self.buffers = {
            "running_mean": np.zeros(n, dtype=dtype),
            "running_var": np.ones(n, dtype=dtype),
        }
        self.zero_grads()
        self._axes = (0,) if len(input_shape) == 1 else (0, 2, 3)
        self._bshape = (1, n) if len(input_shape) == 1 else (1, n, 1, 1)
        return super().build(input_shape, rng, dtype)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        gamma = self.params["gamma"].reshape(self._bshape)
        beta = self.params["beta"].reshape(self._bshape)
        if training:
            count = x.size // x.shape[1]
            mean = x.mean(axis=self._axes, keepdims=True)
            centred = x - mean
            var = (centred * centred).mean(axis=self._axes, keepdims=True)
            m = self.momentum
            unbiased = var * (count / (count - 1)) if count > 1 else var
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            rm *= 1.0 - m
            rm += m * mean.reshape(-1)
            rv *= 1.0 - m
            rv += m * unbiased.reshape(-1)
        else:
            mean = self.buffers["running_mean"].reshape(self._bshape)
            var = self.buffers["running_var"].reshape(self._bshape)
            centred = x - mean
        inv_std = 1.0 / np.sqrt(var + self.eps)
        xhat = centred * inv_std
        self._cache = (xhat, inv_std, training)
        return xhat * gamma + beta

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Training mode: gradient through the batch statistics; eval mode: a per-channel affine."""
        xhat, inv_std, training = self._cache
        axes = self._axes
        dbeta = dout.sum(axis=axes)
        dgamma = (dout * xhat).sum(axis=axes)
        self.grads = {"gamma": dgamma, "beta": dbeta}
        if not input_grad:
            return None
        scale = self.params["gamma"].reshape(self._bshape) * inv_std
        if not training:
            return dout * scale
        count = dout.size // dout.shape[1]
        # dx = gamma/std * (dout - mean(dout) - xhat * mean(dout * xhat))
        mean_d = (dbeta / count).reshape(self._bshape)
        mean_dx = (dgamma / count).reshape(self._bshape)
        return scale * (dout - mean_d - xhat * mean_dx)

    def config(self):
        return {"type": "batchnorm", "momentum": self.momentum, "eps": self.eps}
