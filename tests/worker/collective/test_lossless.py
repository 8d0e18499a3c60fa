"""zstd frames (``worker.collective.lossless``): the exact bits back, whatever way the bytes
arrive, and a frame that cannot be the expected array is refused."""

from __future__ import annotations

import numpy as np
import pytest

from worker.collective.lossless import LENGTH, FrameReceiver, compressed_frame


def received(frame: memoryview, destination: np.ndarray, pieces: list[int]) -> bool:
    """Feed ``frame`` to a FrameReceiver in pieces of the given sizes (as recv_into would fill
    it); -> whether it reported completion exactly at the last byte."""
    receiver, data, done = FrameReceiver(destination), bytes(frame), False
    position = 0
    for size in pieces:
        if done:
            break
        size = min(size, len(receiver.view), len(data) - position)
        receiver.view[:size] = data[position : position + size]
        position += size
        done = receiver.advance(size)
    return done and position == len(data)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pieces", [[1 << 30] * 3, [1] * 20 + [7] * 50 + [1 << 30] * 3])
def test_a_frame_gives_back_the_exact_bits_whatever_pieces_it_arrives_in(dtype, pieces):
    rng = np.random.default_rng(0)
    values = (rng.standard_normal(5000) * 10.0 ** rng.integers(-30, 30, 5000)).astype(dtype)
    values[::7] = 0.0
    values[1] = np.nan
    values[2] = -np.inf
    destination = np.full_like(values, 1.5)

    assert received(compressed_frame(values), destination, pieces)
    assert destination.tobytes() == values.tobytes()


def test_a_gradient_with_zero_runs_compresses_and_random_bits_still_round_trip():
    rng = np.random.default_rng(1)
    gradient = rng.standard_normal(100_000).astype(np.float32) * 1e-3
    gradient[20_000:60_000] = 0.0  # a dead unit's whole row
    noise = rng.integers(0, 2**32, 100_000, dtype=np.uint32).view(np.float32)

    assert len(compressed_frame(gradient)) < 0.7 * gradient.nbytes
    back = np.empty_like(noise)
    assert received(compressed_frame(noise), back, [1 << 30] * 2)
    assert back.tobytes() == noise.tobytes()


def test_an_empty_vector_travels_as_a_frame_too():
    back = np.empty(0, np.float32)
    assert received(compressed_frame(np.empty(0, np.float32)), back, [1 << 30] * 2)


def test_a_length_prefix_no_frame_of_this_size_could_have_is_refused():
    receiver = FrameReceiver(np.empty(100, np.float32))
    LENGTH.pack_into(receiver.prefix, 0, 10**9)
    with pytest.raises(RuntimeError, match="out of step"):
        receiver.advance(LENGTH.size)


def test_a_frame_of_another_size_or_garbage_is_refused():
    frame = compressed_frame(np.ones(1000, np.float32))
    with pytest.raises(RuntimeError, match="4000 raw bytes, 2000 expected"):
        received(frame, np.empty(500, np.float32), [1 << 30] * 2)
    garbage = bytearray(frame)
    garbage[LENGTH.size :] = bytes(len(garbage) - LENGTH.size)
    with pytest.raises(RuntimeError, match="did not decompress"):
        received(memoryview(garbage), np.empty(1000, np.float32), [1 << 30] * 2)
