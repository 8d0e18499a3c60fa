"""Open Inference Protocol (v2) tensors: request parsing (JSON, or the binary tensor extension
that ``tritonclient`` uses by default) and response tensors. Errors are OipError (HTTP 400)."""

from __future__ import annotations

import json
import math
import re

import numpy as np

from api.json_body import BodyError, loads

DATATYPES = {
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
}


_LITERALS = re.compile(rb"true|false|null")


class OipError(ValueError):
    """A refused inference request: ``{"error": message}`` with ``status``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


INPUT_NAME = "input"  # the one input tensor's name in the model metadata (api.routers.oip)


def parse_infer_request(
    body: bytes, header_length: str | None, max_values: int
) -> tuple[dict, np.ndarray]:
    """(request document, the one input tensor as an array of its declared shape); bodies with
    more than ``max_values`` values are refused before parsing (``api.json_body``). The tensor
    must be named as the metadata names it (KServe and Triton refuse unknown input names)."""
    binary = b""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise OipError("Inference-Header-Content-Length: not an integer") from None
        if not 0 < size <= len(body):
            raise OipError("Inference-Header-Content-Length: outside the body")
        body, binary = body[:size], body[size:]
    try:
        document = loads(body, max_values=max_values)
    except BodyError as error:
        raise OipError(f"{error}; expected a JSON inference request") from None
    inputs = document.get("inputs") if isinstance(document, dict) else None
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise OipError("inputs: expected exactly one input tensor")
    name = inputs[0].get("name")
    if name != INPUT_NAME:
        got = "missing" if name is None else f"unexpected input {json.dumps(name)[:60]}"
        raise OipError(
            f"inputs[0].name: {got}; the model's input tensor is named {INPUT_NAME!r} "
            "(GET /v2/models/<name> lists it)"
        )
    if "data" in inputs[0] and _LITERALS.search(body):  # rare: only then look for them
        _refuse_literals(inputs[0]["data"])
    return document, _tensor(inputs[0], binary)


def _tensor(spec: dict, binary: bytes) -> np.ndarray:
    shape, datatype = spec.get("shape"), spec.get("datatype")
    ok = isinstance(shape, list) and 1 <= len(shape) <= 8
    if not ok or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise OipError("inputs[0].shape: expected a list of 1-8 integers >= 0")
    if datatype not in DATATYPES:
        raise OipError(f"inputs[0].datatype: {datatype!r} is not one of {sorted(DATATYPES)}")
    dtype, count = np.dtype(DATATYPES[datatype]), math.prod(shape)
    parameters = spec.get("parameters") or {}
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is not None:
        if size != count * dtype.itemsize or size != len(binary):
            raise OipError(f"inputs[0]: binary_data_size {size!r} does not fit shape {shape}")
        return np.frombuffer(binary, dtype=dtype).reshape(shape)
    try:
        array = np.asarray(spec.get("data"), dtype=np.float64)
    except (ValueError, TypeError):
        raise OipError("inputs[0].data: expected numbers") from None
    if array.size != count:
        raise OipError(f"inputs[0].data: {array.size} values for shape {shape}")
    _check_fits(array, datatype)
    return array.reshape(shape)


def _check_fits(array: np.ndarray, datatype: str) -> None:
    """JSON data must be values of the declared datatype: 300 is not INT8, 1.5 not INT32, 70000
    not FP16 (they were converted to float and answered as if they were)."""
    dtype = np.dtype(DATATYPES[datatype])
    if dtype.kind == "f":
        if dtype.itemsize < 8:  # NaN and infinities are refused later, naming the index
            big = np.isfinite(array) & (np.abs(array) > float(np.finfo(dtype).max))
            if big.any():
                value = array.reshape(-1)[np.flatnonzero(big)[0]]
                raise OipError(f"inputs[0].data: {value:g} does not fit {datatype}")
        return
    info = np.iinfo(dtype)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(array) | (array != np.round(array))
        bad |= (array < float(info.min)) | (array > float(info.max))
    if bad.any():
        value = array.reshape(-1)[np.flatnonzero(bad)[0]]
        raise OipError(f"inputs[0].data: {value:g} is not a value of {datatype}")


def _refuse_literals(data) -> None:
    """JSON true, false and null are not numbers (NumPy would read them as 1, 0 and NaN)."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, list):
            pending.extend(value)
        elif value is None or isinstance(value, bool):
            raise OipError(f"inputs[0].data: {json.dumps(value)} is not a number")


def output_tensor(name: str, values, datatype: str) -> dict:
    array = np.asarray(values, dtype=DATATYPES[datatype])
    return {
        "name": name,
        "datatype": datatype,
        "shape": list(array.shape),
        "data": array.reshape(-1).tolist(),
    }
