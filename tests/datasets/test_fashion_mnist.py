"""The real Fashion-MNIST from Debian's dataset-fashion-mnist (skipped when not installed)."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from worker.config import Settings
from worker.datasets import load_dataset
from worker.datasets.mnist import FASHION_MNIST, STEMS

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
pytestmark = pytest.mark.skipif(not DEBIAN.is_dir(), reason="dataset-fashion-mnist not installed")

# Zalando's gzip headers (FNAME flag, these mtimes, XFL 0, OS 3) that Debian's repacking dropped
ORIGINAL_MTIMES = {"train_labels": 1504176606, "test_labels": 1504176627}


@pytest.mark.parametrize("role", sorted(ORIGINAL_MTIMES))
def test_debian_copy_is_the_published_file_with_a_rewritten_gzip_header(role):
    debian = (DEBIAN / f"{STEMS[role]}.gz").read_bytes()
    assert debian[3] & 0x08 == 0  # Debian's header stores no file name
    header = b"\x1f\x8b\x08\x08" + struct.pack("<I", ORIGINAL_MTIMES[role]) + b"\x00\x03"
    published = header + STEMS[role].encode() + b"\x00" + debian[10:]

    assert hashlib.sha256(published).hexdigest() == FASHION_MNIST.sha256[role]


def test_loads_60000_train_and_10000_test_images_from_usr_share(tmp_path, fresh_cache):
    ds = load_dataset(
        {"name": "fashion-mnist", "validation_split": 0.1},
        settings=Settings(data_dir=tmp_path / "empty"),
    )

    assert ds.x_train.shape == (54_000, 1, 28, 28) and ds.x_val.shape == (6_000, 1, 28, 28)
    assert ds.x_test.shape == (10_000, 1, 28, 28) and ds.x_train.dtype == np.float32
    assert np.bincount(ds.y_test).tolist() == [1000] * 10  # the published test set is balanced
    assert np.bincount(ds.y_val).tolist() == [600] * 10  # stratified validation part
    assert ds.classes[9] == "Ankle boot" and ds.preprocessing["divisor"] == 255.0
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert not (tmp_path / "empty").exists()  # found locally: nothing downloaded
