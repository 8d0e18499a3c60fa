"""Layers: each owns its parameters, gradients and buffers (see base.Layer)."""

from nnlib.layers.activation import ActivationLayer
from nnlib.layers.base import Layer
from nnlib.layers.batchnorm import BatchNorm
from nnlib.layers.conv import Conv2D
from nnlib.layers.dense import Dense
from nnlib.layers.dropout import Dropout
from nnlib.layers.flatten import Flatten
from nnlib.layers.pooling import AvgPool2D, MaxPool2D
from nnlib.layers.registry import layer_from_spec

__all__ = [
    "ActivationLayer",
    "AvgPool2D",
    "BatchNorm",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Layer",
    "MaxPool2D",
    "layer_from_spec",
]
