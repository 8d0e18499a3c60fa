"""Save and load a model as one ``.npz``: its arrays plus the architecture and metadata as JSON.

The JSON travels as a uint8 array (``__gradq__``), so the file is plain arrays and loading never
unpickles anything (``allow_pickle=False``). ``file`` is a path or a binary file object, e.g. a
``io.BytesIO`` whose bytes a worker stores in Redis.
"""

from __future__ import annotations

import json
import os
from typing import IO

import numpy as np

from nnlib.model import build_model

FORMAT = "gradq-model"
VERSION = 1
_HEADER = "__gradq__"


def save(file: str | os.PathLike | IO[bytes], model, **metadata) -> None:
    """Write parameters and buffers (``model.state_dict()``), spec, input shape, dtype, metadata.

    ``metadata`` must be JSON-serialisable (classes, preprocessing, metrics, job id...).
    """
    state = model.state_dict()
    if _HEADER in state:
        raise ValueError(f"model state: the name {_HEADER!r} is reserved")
    header = {
        "format": FORMAT,
        "version": VERSION,
        "spec": model.spec,
        "input_shape": list(model.input_shape),
        "dtype": str(model.dtype),
        "metadata": metadata,
    }
    try:
        text = json.dumps(header, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata: not JSON-serialisable ({exc})") from None
    arrays = {name: np.ascontiguousarray(a) for name, a in state.items()}
    arrays[_HEADER] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    if isinstance(file, (str, os.PathLike)):
        # np.savez appends ".npz" to a path without it; writing through a handle keeps the name.
        with open(file, "wb") as handle:
            np.savez(handle, **arrays)
    else:
        np.savez(file, **arrays)


def load(file: str | os.PathLike | IO[bytes]) -> tuple[object, dict]:
    """``(model, metadata)`` from a file written by ``save``; the model has the saved dtype."""
    try:
        archive = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"file: not a readable .npz ({exc})") from None
    with archive:
        if _HEADER not in archive.files:
            raise ValueError(f"file: no {_HEADER!r} entry; not a gradq model")
        header = json.loads(archive[_HEADER].tobytes().decode("utf-8"))
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise ValueError(
                f"file: format {header.get('format')!r} version {header.get('version')!r} "
                f"is not {FORMAT!r} version {VERSION}"
            )
        state = {name: archive[name] for name in archive.files if name != _HEADER}
    model = build_model(
        header["spec"], tuple(header["input_shape"]), seed=0, dtype=np.dtype(header["dtype"])
    )
    model.load_state_dict(state)
    return model, header["metadata"]
