"""Max and average pooling over (N, C, H, W), "valid" windows, stride defaulting to pool_size.

Both loop over the ph*pw offsets inside a window only; each iteration is one vectorised
operation on the strided view of that offset over all samples, channels and windows, so any stride
(overlapping or not) works and the input's memory order is kept.

Max-pool backward routes each window's gradient to exactly ONE position: the first maximum in
row-major window order. Routing it to every position equal to the max would multiply the gradient
on constant regions (e.g. the blank background of an image), an error finite differences
cannot see because the function is not differentiable there.
"""

from __future__ import annotations

import numpy as np

from nnlib.layers.base import Layer, check_pair, spatial_input


class _Pool2D(Layer):
    fields = ("pool_size", "stride")
    required = ("pool_size",)

    def __init__(self, pool_size, stride=None) -> None:
        super().__init__()
        self.pool_size = check_pair("pool_size", pool_size, 1)
        self.stride = self.pool_size if stride is None else check_pair("stride", stride, 1)
        self._x_shape: tuple | None = None

    def output_shape_for(self, input_shape):
        c, h, w = spatial_input("pool_size", list(self.pool_size), input_shape)
        ph, pw = self.pool_size
        if ph > h or pw > w:
            raise ValueError(
                f"field 'pool_size' = {list(self.pool_size)} is larger than the input's "
                f"spatial size ({h}, {w})"
            )
        sh, sw = self.stride
        return (c, (h - ph) // sh + 1, (w - pw) // sw + 1)

    def _views(self, x: np.ndarray):
        """Yield (offset index, strided view of x at that window offset), shape (N, C, Ho, Wo)."""
        _, ho, wo = self.output_shape
        sh, sw = self.stride
        ph, pw = self.pool_size
        for i in range(ph):
            for j in range(pw):
                yield (
                    i * pw + j,
                    x[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw],
                )

    def _empty_like_input(self, dout: np.ndarray) -> np.ndarray:
        # Same memory order as the cached input so the next layer down reads it without a copy.
        return np.zeros_like(self._like, dtype=dout.dtype)

    def config(self):
        return {
            "type": self.type_name,
            "pool_size": list(self.pool_size),
            "stride": list(self.stride),
        }


class MaxPool2D(_Pool2D):
    type_name = "maxpool2d"

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        views = self._views(x)
        _, first = next(views)
        best = first.copy(order="K")
        arg = np.zeros(best.shape, dtype=np.uint8) if training else None
        for k, v in views:
            better = v > best  # strict: ties keep the earlier offset
            np.copyto(best, v, where=better)
            if training:
                arg[better] = k
        if training:
            self._arg, self._like = arg, x
        return best

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if not input_grad:
            return None
        dx = self._empty_like_input(dout)
        for k, dxv in self._views(dx):
            np.add(dxv, dout, out=dxv, where=self._arg == k)
        return dx


class AvgPool2D(_Pool2D):
    type_name = "avgpool2d"

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        views = self._views(x)
        _, first = next(views)
        total = first.copy(order="K")
        for _, v in views:
            total += v
        total *= 1.0 / (self.pool_size[0] * self.pool_size[1])
        self._like = x
        return total

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if not input_grad:
            return None
        g = dout * (1.0 / (self.pool_size[0] * self.pool_size[1]))
        dx = self._empty_like_input(dout)
        for _, dxv in self._views(dx):
            dxv += g
        return dx
