"""Peak memory of accepting an upload (validate + store), as a multiple of the file's size.

Runs ``validate_upload`` and the blob writes of ``DatasetStore.put`` in-process under tracemalloc
on typical uploads (float32 table, uint8 channels-last images, int64 features, a CSV), once with
the upload as bytes in memory (counted once: the API held them before) and once from a temporary
file (what the API reads now). Blobs go to a store that copies chunks out like the Redis one and
drops them, so the figure is the API's own working memory.

    python bench/upload_memory.py [--mb 64]
"""

from __future__ import annotations

import argparse
import io
import sys
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class DroppingBlobs:
    """A BlobStore that copies each chunk out (as a Redis client would) and keeps nothing."""

    def __init__(self, chunk_bytes: int = 4 * 1024 * 1024):
        self.chunk_bytes = chunk_bytes

    def put(self, key: str, data: memoryview) -> int:
        count = 0
        for start in range(0, len(data), self.chunk_bytes):
            bytes(data[start : start + self.chunk_bytes])
            count += 1
        return count

    def get(self, key, nbytes):  # pragma: no cover - not used here
        raise NotImplementedError

    def delete(self, key: str) -> None:
        pass


def uploads(megabytes: int) -> dict[str, tuple[str, bytes]]:
    rng = np.random.default_rng(0)
    n_table = megabytes * 1024 * 1024 // (64 * 4)
    n_images = megabytes * 1024 * 1024 // (32 * 32 * 3)
    n_int = megabytes * 1024 * 1024 // (16 * 8)
    sets = {
        "float32 table": {
            "x_train": rng.random((n_table, 64), dtype=np.float32),
            "y_train": np.arange(n_table) % 10,
        },
        "uint8 NHWC images": {
            "x_train": rng.integers(0, 256, (n_images, 32, 32, 3), dtype=np.uint8),
            "y_train": np.arange(n_images) % 10,
        },
        "int64 features": {
            "x_train": rng.integers(-1000, 1000, (n_int, 16)),
            "y_train": np.arange(n_int) % 10,
        },
    }
    out = {}
    for name, arrays in sets.items():
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        out[name] = ("set.npz", buffer.getvalue())
    rows = megabytes * 1024 * 1024 // (16 * 8)
    table = np.round(rng.random((rows, 16)) * 100, 2)
    lines = [",".join(f"f{i}" for i in range(15)) + ",label"]
    lines += [",".join(f"{v:g}" for v in row[:-1]) + f",{int(row[-1]) % 5}" for row in table]
    out["csv"] = ("set.csv", ("\n".join(lines) + "\n").encode())
    return out


def peak_ratio(filename: str, content: bytes, from_file: bool) -> float:
    """Peak traced memory of validating and storing, over the file size. ``from_file``: read
    from a temporary file as the API does (its multipart parser spools uploads to disk);
    otherwise the bytes are in memory and count once."""
    import tempfile

    from worker.datasets.uploads import validate_upload

    blobs = DroppingBlobs()
    with tempfile.TemporaryFile() as spooled:
        spooled.write(content)
        source = spooled if from_file else content
        tracemalloc.start()
        try:
            uploaded = validate_upload(filename, source, max_bytes=1 << 40)
            for name, array in uploaded.arrays.items():  # what DatasetStore.put does
                blobs.put(name, memoryview(np.ascontiguousarray(array)).cast("B"))
            del uploaded
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    held = 0 if from_file else len(content)
    return (peak + held) / len(content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=64, help="approximate size of each upload")
    args = parser.parse_args()
    for name, (filename, content) in uploads(args.mb).items():
        in_memory = peak_ratio(filename, content, from_file=False)
        from_file = peak_ratio(filename, content, from_file=True)
        print(
            f"{name:20s} {len(content) / 2**20:6.1f} MB  peak: bytes in memory {in_memory:5.2f}x,"
            f" from the spooled file {from_file:5.2f}x the file size"
        )


if __name__ == "__main__":
    main()
