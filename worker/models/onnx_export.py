"""nnlib model -> ONNX graph (built and checked with the ``onnx`` package).

The graph takes the same raw inputs as ``POST /v1/models/{ref}/predict`` (float32, shape
``[batch, *input_shape]``): the stored preprocessing (scale or standardize) is its first node.
Outputs: ``outputs`` (the model's outputs, as ``Model.predict``) and, for classifiers,
``probabilities`` (as the predict endpoint's). Inference semantics: dropout is the identity,
batch norm uses the running statistics. Weights are exported as float32.
"""

from __future__ import annotations

import json
import math

import numpy as np

OPSET = 17  # LayerNormalization-era opset: every op used here, loadable by onnxruntime >= 1.13
IR_VERSION = 8  # the IR of opset 17
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715


class OnnxUnavailableError(RuntimeError):
    """The optional ``onnx`` package is not installed."""


def _onnx():
    try:
        import onnx
    except ImportError:
        raise OnnxUnavailableError(
            "format: ONNX export needs the 'onnx' package on the API host"
            " (pip install 'gradq[onnx]')"
        ) from None
    return onnx


class _Graph:
    """Nodes and initializers appended in order; ``name()`` hands out unique tensor names."""

    def __init__(self, onnx):
        self.onnx, self.helper = onnx, onnx.helper
        self.nodes, self.initializers, self._count = [], [], 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, array) -> str:
        name = self.name(hint)
        data = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
        self.initializers.append(self.onnx.numpy_helper.from_array(data, name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def to_onnx(model, metadata: dict) -> bytes:
    """The serialized ONNX model of ``model`` (an nnlib.Model) with ``metadata``'s
    preprocessing and classes; checked with ``onnx.checker`` (full check) before returning."""
    onnx = _onnx()
    g = _Graph(onnx)
    x = _preprocessing(g, "input", metadata.get("preprocessing") or {}, model.input_shape)
    rank = 1 + len(model.input_shape)
    for _, layers in model.groups:
        for layer in layers:
            x, rank = _layer(g, layer, x, rank)
    outputs = [("outputs", x, list(model.output_shape))]
    classes = metadata.get("classes")
    if metadata.get("num_classes") or classes:
        outputs.append(("probabilities", _probabilities(g, x, model), None))
    helper, float_type = onnx.helper, onnx.TensorProto.FLOAT
    graph_outputs = []
    for name, tensor, shape in outputs:
        g.nodes.append(helper.make_node("Identity", [tensor], [name], name=name))
        dims = ["batch", *shape] if shape else ["batch", _class_count(model)]
        graph_outputs.append(helper.make_tensor_value_info(name, float_type, dims))
    graph = helper.make_graph(
        g.nodes,
        "gradq_model",
        [helper.make_tensor_value_info("input", float_type, ["batch", *model.input_shape])],
        graph_outputs,
        initializer=g.initializers,
    )
    proto = helper.make_model(
        graph,
        producer_name="gradq",
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
    )
    info = {"name": metadata.get("name"), "version": metadata.get("version")}
    info |= {"id": metadata.get("id"), "classes": classes}
    for key, value in info.items():
        if value is not None:
            entry = proto.metadata_props.add()
            entry.key, entry.value = f"gradq.{key}", json.dumps(value)
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def _class_count(model) -> int:
    outputs = math.prod(model.output_shape)
    return 2 if outputs == 1 else outputs


def _preprocessing(g: _Graph, x: str, prep: dict, input_shape) -> str:
    """The normalization the worker fitted on the training data, replayed in the graph."""
    method = prep.get("normalize")
    if method == "scale":
        return g.op("Div", [x, g.const("divisor", prep["divisor"])], "scaled")
    if method == "standardize":
        mean = np.asarray(prep["mean"], dtype=np.float32).reshape(input_shape)
        std = np.asarray(prep["std"], dtype=np.float32).reshape(input_shape)
        centred = g.op("Sub", [x, g.const("mean", mean)], "centred")
        return g.op("Div", [centred, g.const("std", std)], "standardized")
    return x


def _layer(g: _Graph, layer, x: str, rank: int) -> tuple[str, int]:
    """One nnlib layer as ONNX nodes: (output tensor, output rank)."""
    kind = getattr(layer, "type_name", "activation")
    params = layer.params
    if kind == "dense":
        if rank != 2:
            x = g.op("Flatten", [x], axis=1)
        w = g.const("W", params["W"])
        if "b" in params:
            return g.op("Gemm", [x, w, g.const("b", params["b"])], "dense"), 2
        return g.op("MatMul", [x, w], "dense"), 2
    if kind == "conv2d":
        inputs = [x, g.const("W", params["W"])] + (
            [g.const("b", params["b"])] if "b" in params else []
        )
        pads = [layer.pad_h[0], layer.pad_w[0], layer.pad_h[1], layer.pad_w[1]]
        attrs = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride)}
        return g.op("Conv", inputs, "conv", pads=pads, **attrs), 4
    if kind in ("maxpool2d", "avgpool2d"):
        op = "MaxPool" if kind == "maxpool2d" else "AveragePool"
        attrs = {"kernel_shape": list(layer.pool_size), "strides": list(layer.stride)}
        return g.op(op, [x], kind, **attrs), 4
    if kind == "batchnorm":
        stats = [params["gamma"], params["beta"]]
        stats += [layer.buffers["running_mean"], layer.buffers["running_var"]]
        names = ("gamma", "beta", "mean", "var")
        inputs = [x] + [g.const(n, a) for n, a in zip(names, stats, strict=True)]
        return g.op("BatchNormalization", inputs, "batchnorm", epsilon=float(layer.eps)), rank
    if kind == "dropout":
        return g.op("Identity", [x], "dropout"), rank
    if kind == "flatten":
        return g.op("Flatten", [x], axis=1), 2
    return _activation(g, layer.name, getattr(layer, "alpha", None), x), rank


def _activation(g: _Graph, name: str, alpha, x: str) -> str:
    if name == "relu":
        return g.op("Relu", [x])
    if name == "leaky_relu":
        return g.op("LeakyRelu", [x], alpha=float(0.01 if alpha is None else alpha))
    if name == "sigmoid":
        return g.op("Sigmoid", [x])
    if name == "tanh":
        return g.op("Tanh", [x])
    if name == "softmax":
        return g.op("Softmax", [x], axis=1)
    if name == "gelu":  # nnlib's tanh approximation: opset 17 has no Gelu node
        cube = g.op("Mul", [g.op("Mul", [x, x]), x], "cube")
        inner = g.op("Add", [x, g.op("Mul", [cube, g.const("k", _GELU_K)])])
        t = g.op("Tanh", [g.op("Mul", [inner, g.const("c", _GELU_C)])])
        half_x = g.op("Mul", [x, g.const("half", 0.5)])
        return g.op("Mul", [half_x, g.op("Add", [t, g.const("one", 1.0)])], "gelu")
    raise ValueError(f"activation {name!r} has no ONNX export")


def _probabilities(g: _Graph, x: str, model) -> str:
    """The predict endpoint's probabilities: softmax of the logits (as is after a softmax
    layer), or [1 - p, p] with p = sigmoid of a single logit."""
    if math.prod(model.output_shape) == 1:
        flat = g.op("Flatten", [x], axis=1)
        p = g.op("Sigmoid", [flat])
        return g.op("Concat", [g.op("Sub", [g.const("one", 1.0), p]), p], "probs", axis=1)
    last = model.spec["layers"][-1]
    if "softmax" in (last.get("type"), last.get("activation")):
        return g.op("Identity", [x], "probs")
    return g.op("Softmax", [g.op("Flatten", [x], axis=1)], "probs", axis=1)
