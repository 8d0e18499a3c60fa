"""nnlib: backpropagation in NumPy: layers and models, losses, optimizers, schedules, training."""

from nnlib import losses, optimizers, schedules
from nnlib.model import Model, build_model
from nnlib.serialization import load, save
from nnlib.shapes import ModelShape, infer_shapes
from nnlib.training import History, evaluate, fit, loss_and_gradients

__all__ = [
    "History",
    "Model",
    "ModelShape",
    "build_model",
    "evaluate",
    "fit",
    "infer_shapes",
    "load",
    "loss_and_gradients",
    "losses",
    "optimizers",
    "save",
    "schedules",
]
