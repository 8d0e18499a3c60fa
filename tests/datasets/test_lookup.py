"""MNIST-style sets: GRADQ_DATA_DIR, then /usr/share/datasets, then verified download."""

from __future__ import annotations

import gzip
import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.harness import free_port
from worker.config import Settings
from worker.datasets import DatasetError, load_dataset
from worker.datasets.idx import encode_idx
from worker.datasets.mnist import ROLES, STEMS, IdxSet, locate_files, read_idx_set


def tiny_files(n_train=12, n_test=5, side=4, seed=0) -> dict[str, bytes]:
    """Gzipped IDX bytes of a miniature MNIST (role -> bytes); pixel values mark the seed."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": np.full((n_train, side, side), seed, np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    return {role: gzip.compress(encode_idx(a), mtime=0) for role, a in arrays.items()}


def write_set(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for role, content in files.items():
        (folder / f"{STEMS[role]}.gz").write_bytes(content)


def tiny_spec(files: dict[str, bytes], mirrors=()) -> IdxSet:
    digests = {role: hashlib.sha256(content).hexdigest() for role, content in files.items()}
    return IdxSet("tiny", tuple(mirrors), digests, tuple(str(d) for d in range(10)))


def test_data_dir_wins_over_the_system_folder(tmp_path):
    data_dir, system = tmp_path / "data", tmp_path / "system"
    write_set(data_dir / "tiny", tiny_files(seed=1))
    write_set(system / "tiny", tiny_files(seed=2))

    found = locate_files(tiny_spec(tiny_files(seed=1)), data_dir, [system])

    assert set(found) == set(ROLES)
    assert all(path.parent == data_dir / "tiny" for path in found.values())


def test_system_folder_is_used_when_the_data_dir_lacks_the_set(tmp_path):
    system = tmp_path / "system"
    write_set(system / "tiny", tiny_files(seed=2))

    found = locate_files(tiny_spec(tiny_files()), tmp_path / "data", [system])

    assert all(path.parent == system / "tiny" for path in found.values())
    raw = read_idx_set(tiny_spec(tiny_files()), found)
    assert raw.x_train.shape == (12, 1, 4, 4) and raw.x_train.max() == 2


def test_uncompressed_files_are_found_too(tmp_path):
    folder = tmp_path / "data" / "tiny"
    folder.mkdir(parents=True)
    for role, content in tiny_files().items():
        (folder / STEMS[role]).write_bytes(gzip.decompress(content))

    found = locate_files(tiny_spec(tiny_files()), tmp_path / "data", [])

    assert found["train_images"].name == "train-images-idx3-ubyte"


def test_missing_files_are_downloaded_from_the_first_working_mirror(file_server, tmp_path):
    files = tiny_files(seed=3)
    for role, content in files.items():
        file_server.files[f"/good/{STEMS[role]}.gz"] = content
    spec = tiny_spec(files, mirrors=[file_server.url + "broken/", file_server.url + "good/"])
    data_dir = tmp_path / "data"

    found = locate_files(spec, data_dir, [tmp_path / "system"])
    again = locate_files(spec, data_dir, [tmp_path / "system"])

    assert all(path.parent == data_dir / "tiny" for path in found.values())
    assert found == again
    for role in ROLES:  # fetched once each: the second lookup found the saved copies
        assert file_server.requests[f"/good/{STEMS[role]}.gz"] == 1
        assert found[role].read_bytes() == files[role]
    assert read_idx_set(spec, found).x_train.max() == 3


def test_a_tampered_mirror_is_refused_and_nothing_is_saved(file_server, tmp_path):
    files = tiny_files()
    for role in ROLES:
        file_server.files[f"/{STEMS[role]}.gz"] = tiny_files(seed=9)[role]
    spec = tiny_spec(files, mirrors=[file_server.url])

    with pytest.raises(DatasetError, match="SHA-256 mismatch"):
        locate_files(spec, tmp_path / "data", [])

    assert list((tmp_path / "data" / "tiny").iterdir()) == []


def test_no_copy_and_no_network_names_every_place_looked_in(tmp_path):
    mirror = f"http://127.0.0.1:{free_port()}/mnist/"
    spec = tiny_spec(tiny_files(), mirrors=[mirror])
    data_dir, system = tmp_path / "data", tmp_path / "system"

    with pytest.raises(DatasetError) as info:
        locate_files(spec, data_dir, [system])

    message = str(info.value)
    assert "train-images-idx3-ubyte" in message
    assert str(data_dir / "tiny") in message and str(system / "tiny") in message
    assert mirror + "train-images-idx3-ubyte.gz: cannot connect" in message


def test_load_dataset_prefers_gradq_data_dir_over_usr_share(tmp_path, monkeypatch, fresh_cache):
    write_set(tmp_path / "fashion-mnist", tiny_files(n_train=20, seed=5))
    monkeypatch.setenv("GRADQ_DATA_DIR", str(tmp_path))

    ds = load_dataset({"name": "fashion-mnist", "validation_split": 0}, settings=Settings())

    assert ds.x_train.shape == (20, 1, 4, 4)
    assert ds.classes[0] == "T-shirt/top" and ds.num_classes == 10
    np.testing.assert_allclose(ds.x_train, 5 / 255)


def test_a_parsed_set_is_cached_per_process_until_its_files_change(tmp_path, fresh_cache):
    write_set(tmp_path / "mnist", tiny_files(n_train=40, seed=6))
    settings = Settings(data_dir=tmp_path)

    first = load_dataset({"name": "mnist", "validation_split": 0.1}, settings=settings, seed=1)
    second = load_dataset({"name": "mnist", "validation_split": 0.3}, settings=settings, seed=2)
    assert fresh_cache.loads == 1
    assert (len(first.x_val), len(second.x_val)) == (4, 12)  # same parse, other splits

    write_set(tmp_path / "mnist", tiny_files(n_train=30, seed=7))  # new files: new key
    third = load_dataset({"name": "mnist"}, settings=settings)

    assert fresh_cache.loads == 2
    assert len(third.x_train) + len(third.x_val) == 30
    load_dataset({"name": "blobs", "size": 50}, settings=settings)
    load_dataset({"name": "blobs", "size": 60}, settings=settings)
    assert fresh_cache.loads == 4  # synthetic parameters are part of the key


def test_cached_arrays_cannot_be_modified_by_a_job(tmp_path, fresh_cache):
    write_set(tmp_path / "mnist", tiny_files(seed=6))
    settings = Settings(data_dir=tmp_path)
    ds = load_dataset({"name": "mnist", "validation_split": 0}, settings=settings)

    ds.x_train[:] = 0  # the Dataset is the job's own copy
    again = load_dataset({"name": "mnist", "validation_split": 0}, settings=settings)

    np.testing.assert_allclose(again.x_train, 6 / 255)
    raw = next(iter(fresh_cache._entries.values()))
    assert not raw.x_train.flags.writeable


def test_threads_loading_one_set_together_parse_it_once(tmp_path, fresh_cache):
    write_set(tmp_path / "mnist", tiny_files(seed=6))
    settings = Settings(data_dir=tmp_path)
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(load_dataset({"name": "mnist"}, settings=settings))
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert len(results) == 4 and fresh_cache.loads == 1
