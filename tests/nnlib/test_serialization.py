"""save/load: one .npz of plain arrays; identical outputs after a round trip; never unpickles."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import nnlib

SPEC = {
    "layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 4}]
}
UNPICKLED = []


def _record_unpickle():
    UNPICKLED.append(True)
    return "payload"


class Booby:
    """Pickles to a call of ``_record_unpickle``: loading it would show in ``UNPICKLED``."""

    def __reduce__(self):
        return (_record_unpickle, ())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_through_bytes_gives_identical_outputs_and_metadata(dtype):
    model = nnlib.build_model(SPEC, (6,), seed=3, dtype=dtype)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(dtype)
    buffer = io.BytesIO()

    nnlib.save(buffer, model, classes=["a", "b", "c", "d"], metrics={"test_accuracy": 0.5})
    loaded, metadata = nnlib.load(io.BytesIO(buffer.getvalue()))

    np.testing.assert_array_equal(
        loaded.forward(x, training=False), model.forward(x, training=False)
    )
    assert metadata == {"classes": ["a", "b", "c", "d"], "metrics": {"test_accuracy": 0.5}}
    assert loaded.spec == model.spec and loaded.input_shape == (6,)
    assert loaded.parameters()["0.W"].dtype == dtype


def test_saving_to_a_path_keeps_the_name_and_holds_only_plain_arrays(tmp_path):
    model = nnlib.build_model(SPEC, (6,), seed=1)
    path = tmp_path / "weights.bin"

    nnlib.save(path, model)

    assert path.exists() and not (tmp_path / "weights.bin.npz").exists()
    with np.load(path, allow_pickle=False) as archive:
        assert all(archive[name].dtype != object for name in archive.files)
        header = json.loads(archive["__gradq__"].tobytes())
    assert header["spec"] == SPEC and header["input_shape"] == [6] and header["dtype"] == "float32"
    loaded, _ = nnlib.load(path)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], value)


def test_a_file_with_a_pickled_array_is_refused_without_unpickling_it():
    model = nnlib.build_model(SPEC, (6,), seed=1)
    buffer = io.BytesIO()
    nnlib.save(buffer, model)
    # Replace one weight with an object array: numpy would have to unpickle it to read it.
    tampered = io.BytesIO()
    with np.load(io.BytesIO(buffer.getvalue())) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["0.W"] = np.array([Booby()], dtype=object)
    np.savez(tampered, **arrays)

    with pytest.raises(ValueError):
        nnlib.load(io.BytesIO(tampered.getvalue()))
    assert UNPICKLED == []


def test_files_that_are_not_gradq_models_are_refused():
    plain = io.BytesIO()
    np.savez(plain, x=np.zeros(3))
    with pytest.raises(ValueError, match="not a gradq model"):
        nnlib.load(io.BytesIO(plain.getvalue()))
    with pytest.raises(ValueError, match="not a readable .npz"):
        nnlib.load(io.BytesIO(b"definitely not a zip file"))


def test_metadata_that_is_not_json_is_refused():
    model = nnlib.build_model(SPEC, (6,))
    with pytest.raises(ValueError, match="metadata"):
        nnlib.save(io.BytesIO(), model, scaler=np.float32)
