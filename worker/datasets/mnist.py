"""MNIST and Fashion-MNIST: where the IDX files are looked for, downloaded from, and verified.

Lookup order per file: ``GRADQ_DATA_DIR/<name>/``, then ``/usr/share/datasets/<name>/`` (Debian's
``dataset-fashion-mnist``), then each mirror in turn, saved into ``GRADQ_DATA_DIR/<name>/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worker.datasets.base import DatasetError, RawSplits
from worker.datasets.download import DownloadError, download
from worker.datasets.idx import read_idx

SYSTEM_DATA_DIRS = (Path("/usr/share/datasets"),)
ROLES = ("train_images", "train_labels", "test_images", "test_labels")
STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class IdxSet:
    """A published set of four gzipped IDX files: ``sha256`` maps role -> digest of the .gz."""

    name: str
    mirrors: tuple[str, ...]
    sha256: dict[str, str]
    classes: tuple[str, ...]


MNIST = IdxSet(
    name="mnist",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    sha256={
        "train_images": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train_labels": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "test_images": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "test_labels": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    classes=tuple(str(digit) for digit in range(10)),
)

# Digests of the files Zalando publishes. Debian's copies differ only in the gzip header (stored
# file name dropped, mtime reset): restoring that header reproduces these digests exactly.
FASHION_MNIST = IdxSet(
    name="fashion-mnist",
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    sha256={
        "train_images": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train_labels": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "test_images": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "test_labels": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
)

IDX_SETS = {s.name: s for s in (MNIST, FASHION_MNIST)}


def _local_copy(folder: Path, role: str) -> Path | None:
    for filename in (f"{STEMS[role]}.gz", STEMS[role]):
        if (folder / filename).is_file():
            return folder / filename
    return None


def locate_files(spec: IdxSet, data_dir: Path, system_dirs=SYSTEM_DATA_DIRS) -> dict[str, Path]:
    """Paths of the four files (role -> path), downloading the missing ones into ``data_dir``.

    Raises DatasetError naming every folder looked in and every URL tried.
    """
    folders = [Path(data_dir) / spec.name] + [Path(d) / spec.name for d in system_dirs]
    found: dict[str, Path] = {}
    for role in ROLES:
        local = next((p for f in folders if (p := _local_copy(f, role)) is not None), None)
        if local is not None:
            found[role] = local
            continue
        failures: list[str] = []
        target = folders[0] / f"{STEMS[role]}.gz"
        for mirror in spec.mirrors:
            try:
                found[role] = download(mirror + target.name, target, spec.sha256[role])
                break
            except DownloadError as exc:
                failures.append(str(exc))
        if role not in found:
            tried = "; ".join(failures) if failures else "downloads disabled"
            raise DatasetError(
                f"data set {spec.name!r}: {STEMS[role]}(.gz) not found in "
                f"{', '.join(str(f) for f in folders)}, and could not be downloaded ({tried})"
            )
    return found


def read_idx_set(spec: IdxSet, files: dict[str, Path]) -> RawSplits:
    """Parse and check the four files: uint8 images (n, 1, h, w), int64 labels in [0, classes)."""
    arrays = {role: read_idx(files[role]) for role in ROLES}
    num_classes = len(spec.classes)
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        where = f"{files[f'{part}_images']} / {files[f'{part}_labels']}"
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DatasetError(
                f"{where}: expected images (n, h, w) and labels (n,), "
                f"got {images.shape} and {labels.shape}"
            )
        labels_ok = labels.size == 0 or 0 <= labels.min() <= labels.max() < num_classes
        if images.dtype != np.uint8 or not labels_ok:
            raise DatasetError(f"{where}: expected uint8 pixels and labels in [0, {num_classes})")
    return RawSplits(
        x_train=arrays["train_images"][:, None],
        y_train=arrays["train_labels"].astype(np.int64),
        x_test=arrays["test_images"][:, None],
        y_test=arrays["test_labels"].astype(np.int64),
        num_classes=num_classes,
        classes=list(spec.classes),
        is_image=True,
        pixel_max=255.0,
    )
