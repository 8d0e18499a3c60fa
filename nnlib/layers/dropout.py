"""Inverted dropout: in training y = x * mask with mask in {0, 1/(1-rate)}; identity in eval.

The layer owns its random generator, spawned from the model's seeded generator at build time
(spawning does not consume the parent's stream, so weights do not depend on dropout layers).
``fix_mask(mask)`` pins the mask, e.g. for gradient checks; ``fix_mask(None)`` resamples again.
"""

from __future__ import annotations

import numpy as np

from nnlib.layers.base import Layer, check_float


class Dropout(Layer):
    type_name = "dropout"
    fields = ("rate",)
    required = ("rate",)

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = check_float("rate", rate, 0.0, 1.0, high_open=True)
        self._rng = np.random.default_rng(0)
        self.fixed_mask: np.ndarray | None = None
        self.mask: np.ndarray | None = None

    def build(self, input_shape, rng, dtype):
        self._rng = rng.spawn(1)[0]
        return super().build(input_shape, rng, dtype)

    def fix_mask(self, mask: np.ndarray | None) -> None:
        """Use ``mask`` (already scaled by 1/(1-rate)) for every training forward until unset."""
        self.fixed_mask = mask

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if not training or self.rate == 0.0:
            self.mask = None
            return x
        if self.fixed_mask is not None:
            mask = self.fixed_mask
        else:
            keep = self._rng.random(x.shape, dtype=x.dtype) >= self.rate
            mask = keep * x.dtype.type(1.0 / (1.0 - self.rate))
        self.mask = mask
        return x * mask

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if not input_grad:
            return None
        return dout if self.mask is None else dout * self.mask

    def config(self):
        return {"type": "dropout", "rate": self.rate}
