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
from nnlib.parallel import over_samples


class _Pool2D(Layer):
    fields = ("pool_size", "stride")
    required = ("pool_size",)

    def __init__(self, pool_size, stride=None) -> None:
        super().__init__()
        self.pool_size = check_pair("pool_size", pool_size, 1)
        self.stride = self.pool_size if stride is None else check_pair("stride", stride, 1)
        self._arg: np.ndarray | None = None
        self._like: np.ndarray | None = None
        self._work_arrays: dict[str, np.ndarray] = {}

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

    def _grad_buffer(self, dout: np.ndarray) -> np.ndarray:
        """dx with the cached input's memory order (so the layer below reads it without a copy);
        zero-filled unless the windows tile the input exactly (then every entry gets written)."""
        _, ho, wo = self.output_shape
        _, h, w = self.input_shape
        tiled = self.stride == self.pool_size and ho * self.stride[0] == h
        tiled = tiled and wo * self.stride[1] == w
        make = np.empty_like if tiled else np.zeros_like
        return make(self._like, dtype=dout.dtype)

    @property
    def _overlapping(self) -> bool:
        return self.stride[0] < self.pool_size[0] or self.stride[1] < self.pool_size[1]

    def config(self):
        return {
            "type": self.type_name,
            "pool_size": list(self.pool_size),
            "stride": list(self.stride),
        }


def _like_layout(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``a`` in the memory order of ``like`` (one copy if they differ, e.g. after a flatten):
    elementwise ops on mixed memory orders are several times slower."""
    if np.argsort(a.strides).tolist() == np.argsort(like.strides).tolist():
        return a
    out = np.empty_like(like, dtype=a.dtype)
    np.copyto(out, a)
    return out


class MaxPool2D(_Pool2D):
    type_name = "maxpool2d"

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        # Only ufuncs with out= and arithmetic on bool masks: NumPy's where=/putmask/boolean
        # indexing paths are 5-20x slower here, and every temporary keeps x's memory order.
        _, first = next(self._views(x))
        best = np.empty_like(first)
        arg = np.empty_like(best, dtype=np.uint8) if training else None

        if self.pool_size == (2, 2):
            self._forward_pairs(x, best, arg)
            self._arg, self._like = arg, x
            return best

        def run(start: int, stop: int) -> None:
            views = self._views(x[start:stop])
            out = best[start:stop]
            np.copyto(out, next(views)[1])
            if training:
                offset = arg[start:stop]
                offset.fill(0)
                better = np.empty_like(out, dtype=bool)
                moved = np.empty_like(offset)
            for k, v in views:
                if training:
                    np.greater(v, out, out=better)  # strict: ties keep the earlier offset
                    # offsets only grow, so "k where better, else keep" is a maximum
                    np.multiply(better, np.uint8(k), out=moved)
                    np.maximum(offset, moved, out=offset)
                np.maximum(out, v, out=out)

        over_samples(run, x.shape[0], 2 * x.size)
        self._arg, self._like = arg, x  # arg is None after an eval forward
        return best

    def _forward_pairs(self, x: np.ndarray, best: np.ndarray, arg: np.ndarray | None) -> None:
        """2 x 2 windows as a tournament: the max of offsets (0, 1), of (2, 3), then of both.

        6 passes over the values and 4 over bytes instead of the general loop's 13 (the CNN's
        first pool, 512 x 32 x 28 x 28, one thread: 41 -> 29 ms). Strict comparisons keep the
        first maximum: offset 1 only if v1 > v0, the second pair only if its max beats the
        first's.
        """
        later = self._work("later", best, best.dtype)
        flags = [self._work(name, best, np.bool_) for name in ("b1", "b3", "c")]

        def run(start: int, stop: int) -> None:
            v0, v1, v2, v3 = (v for _, v in self._views(x[start:stop]))
            out, pair = best[start:stop], later[start:stop]
            np.maximum(v0, v1, out=out)
            np.maximum(v2, v3, out=pair)
            if arg is not None:
                b1, b3, c = (flag[start:stop] for flag in flags)
                np.greater(v1, v0, out=b1)
                np.greater(v3, v2, out=b3)
                np.greater(pair, out, out=c)
                a, (b1, b3, c) = arg[start:stop], (f.view(np.uint8) for f in (b1, b3, c))
                np.add(b3, np.uint8(2), out=a)  # the second pair's offset, 2 or 3
                a -= b1
                a *= c  # c ? offset - b1 : 0
                a += b1  # c ? the second pair's offset : the first pair's (b1)
            np.maximum(out, pair, out=out)

        over_samples(run, x.shape[0], 2 * x.size)

    def _work(self, name: str, like: np.ndarray, dtype) -> np.ndarray:
        """A kept work array in ``like``'s memory order (fresh arrays of this size page-fault)."""
        found = self._work_arrays.get(name)
        order = np.argsort(like.strides).tolist()
        if (
            found is None
            or found.shape != like.shape
            or found.dtype != dtype
            or np.argsort(found.strides).tolist() != order
        ):
            found = self._work_arrays[name] = np.empty_like(like, dtype=dtype)
        return found

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Each window's gradient goes to its first maximum only (offset cached in forward)."""
        if not input_grad:
            return None
        if self._arg is None:  # the last forward was in eval mode: find the maxima now
            self.forward(self._like, training=True)
        dout = _like_layout(dout, self._arg)
        dx = self._grad_buffer(dout)
        overlapping = self._overlapping

        def run(start: int, stop: int) -> None:
            d, arg = dout[start:stop], self._arg[start:stop]
            for k, dxv in self._views(dx[start:stop]):
                if overlapping:
                    dxv += d * (arg == k)
                else:
                    np.multiply(d, arg == k, out=dxv)

        over_samples(run, dx.shape[0], 2 * dx.size)
        return dx


class AvgPool2D(_Pool2D):
    type_name = "avgpool2d"

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        _, first = next(self._views(x))
        total = np.empty_like(first)
        scale = 1.0 / (self.pool_size[0] * self.pool_size[1])

        def run(start: int, stop: int) -> None:
            views = self._views(x[start:stop])
            out = total[start:stop]
            np.copyto(out, next(views)[1])
            for _, v in views:
                out += v
            out *= scale

        over_samples(run, x.shape[0], 2 * x.size)
        self._like = x
        return total

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if not input_grad:
            return None
        g = dout * (1.0 / (self.pool_size[0] * self.pool_size[1]))
        dx = self._grad_buffer(dout)
        overlapping = self._overlapping

        def run(start: int, stop: int) -> None:
            gs = g[start:stop]
            for _, dxv in self._views(dx[start:stop]):
                if overlapping:
                    dxv += gs
                else:
                    dxv[...] = gs

        over_samples(run, dx.shape[0], 2 * dx.size)
        return dx
