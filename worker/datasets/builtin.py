"""The built-in data sets by name: digits, mnist, fashion-mnist, blobs, spirals.

Each source returns a cache key (everything that changes the arrays) and a loader, so that
``load_dataset`` parses a set once per process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from worker.datasets.base import DatasetError, RawSplits, split_raw
from worker.datasets.mnist import IDX_SETS, locate_files, read_idx_set
from worker.datasets.synthetic import SYNTHETIC, SYNTHETIC_KEYS

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
# extra spec keys each built-in set understands (besides name, validation_split, normalize)
BUILTIN_KEYS = {"digits": ("as_image",), "mnist": (), "fashion-mnist": (), **SYNTHETIC_KEYS}
BUILTIN_NAMES = tuple(BUILTIN_KEYS)


def digits(as_image: bool = False) -> RawSplits:
    """scikit-learn's bundled 8x8 digits (1,797 samples, pixel values 0..16), split 80/20 per
    class with a fixed seed; x (n, 64) or, with ``as_image``, (n, 1, 8, 8), as uint8."""
    from sklearn.datasets import load_digits  # imported here: only this set needs scikit-learn

    bunch = load_digits()
    x = bunch.data.astype(np.uint8)
    y = bunch.target.astype(np.int64)
    x = x.reshape(-1, 1, 8, 8) if as_image else x
    return split_raw(
        x, y, 10, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED, is_image=as_image, pixel_max=16.0
    )


def builtin_source(
    name: str, params: dict, data_dir: Path
) -> tuple[tuple, Callable[[], RawSplits]]:
    """``(cache_key, loader)`` of built-in set ``name`` with its extra ``params``."""
    if name == "digits":
        as_image = params.get("as_image", False)
        if not isinstance(as_image, bool):
            raise DatasetError(f"dataset.as_image must be true or false, got {as_image!r}")
        return ("digits", as_image), lambda: digits(as_image)
    if name in SYNTHETIC:
        key = (name, tuple(sorted((k, repr(v)) for k, v in params.items())))
        return key, lambda: SYNTHETIC[name](params)
    spec = IDX_SETS[name]  # load_dataset refused every other name already
    files = locate_files(spec, data_dir)
    stats = tuple(
        (role, str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns)
        for role, path in sorted(files.items())
    )
    return (name, stats), lambda: read_idx_set(spec, files)
