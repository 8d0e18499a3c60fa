"""Layers: each owns its parameters, gradients and buffers (see base.Layer)."""

from nnlib.layers.activation import ActivationLayer
from nnlib.layers.base import Layer
from nnlib.layers.dense import Dense
from nnlib.layers.flatten import Flatten
from nnlib.layers.registry import layer_from_spec

__all__ = ["ActivationLayer", "Dense", "Flatten", "Layer", "layer_from_spec"]
