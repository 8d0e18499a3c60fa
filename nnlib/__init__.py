"""nnlib: backpropagation in NumPy (layers, model; losses, optimizers and training build on it)."""

from nnlib.model import Model, build_model

__all__ = ["Model", "build_model"]
