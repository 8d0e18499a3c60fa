"""Layer specs of the `model` section: a union discriminated by `type`, each with its bounds.

Optional fields default to None and are left out of the stored spec, so nnlib applies its own
defaults; the bounds here only refuse what can never train (the shapes are checked by building).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from api.schemas.base import RequestModel

MAX_UNITS = 8192
MAX_KERNEL = 64

ActivationName = Literal["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softmax"]
Size2 = (
    Annotated[int, Field(ge=1, le=MAX_KERNEL)]
    | Annotated[list[Annotated[int, Field(ge=1, le=MAX_KERNEL)]], Field(min_length=2, max_length=2)]
)


_Layer = RequestModel


class DenseLayer(_Layer):
    """Fully connected: (n, in) -> (n, units)."""

    type: Literal["dense"]
    units: int = Field(ge=1, le=MAX_UNITS, examples=[128])
    activation: ActivationName | None = None
    use_bias: bool | None = None


class Conv2dLayer(_Layer):
    """2-D convolution on channels-first images: (n, c, h, w) -> (n, filters, h', w')."""

    type: Literal["conv2d"]
    filters: int = Field(ge=1, le=MAX_UNITS, examples=[32])
    kernel_size: Size2 = Field(examples=[3])
    stride: Size2 | None = None
    padding: Literal["valid", "same"] | Annotated[int, Field(ge=0, le=MAX_KERNEL)] | None = None
    activation: ActivationName | None = None
    use_bias: bool | None = None


class MaxPool2dLayer(_Layer):
    type: Literal["maxpool2d"]
    pool_size: Size2 = Field(examples=[2])
    stride: Size2 | None = None


class AvgPool2dLayer(_Layer):
    type: Literal["avgpool2d"]
    pool_size: Size2 = Field(examples=[2])
    stride: Size2 | None = None


class FlattenLayer(_Layer):
    type: Literal["flatten"]


class DropoutLayer(_Layer):
    type: Literal["dropout"]
    rate: float = Field(ge=0.0, lt=1.0, examples=[0.2])


class BatchNormLayer(_Layer):
    type: Literal["batchnorm"]
    momentum: float | None = Field(None, gt=0.0, lt=1.0)
    eps: float | None = Field(None, gt=0.0, le=1.0)


class ActivationLayer(_Layer):
    """An activation applied on its own (same names as the `activation` field)."""

    type: ActivationName
    alpha: float | None = Field(None, ge=0.0, le=1.0, description="leaky_relu slope only")

    @model_validator(mode="after")
    def _alpha_only_for_leaky_relu(self) -> ActivationLayer:
        if self.alpha is not None and self.type != "leaky_relu":
            raise ValueError(f"alpha applies to leaky_relu only, not {self.type}")
        return self


LayerSpec = Annotated[
    DenseLayer
    | Conv2dLayer
    | MaxPool2dLayer
    | AvgPool2dLayer
    | FlattenLayer
    | DropoutLayer
    | BatchNormLayer
    | ActivationLayer,
    Field(discriminator="type"),
]
