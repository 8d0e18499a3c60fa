"""Data sets for gradq: built-in sets, validated uploads, preprocessing, and their Redis store.

See docs/ARCHITECTURE.md ("Data sets contract") and docs/datasets.md.
"""

from worker.datasets.base import DatasetError, RawSplits
from worker.datasets.builtin import BUILTIN_NAMES
from worker.datasets.cache import RAW_CACHE
from worker.datasets.dataset import Dataset, load_dataset
from worker.datasets.download import DownloadError, download
from worker.datasets.idx import parse_idx, read_idx
from worker.datasets.preprocessing import apply_preprocessing, fit_preprocessing
from worker.datasets.store import BlobStore, DatasetStore, RedisChunkedBlobs
from worker.datasets.uploads import UploadedArrays, validate_upload

__all__ = [
    "BUILTIN_NAMES",
    "BlobStore",
    "RAW_CACHE",
    "Dataset",
    "DatasetStore",
    "DatasetError",
    "DownloadError",
    "RawSplits",
    "RedisChunkedBlobs",
    "UploadedArrays",
    "apply_preprocessing",
    "download",
    "fit_preprocessing",
    "load_dataset",
    "parse_idx",
    "read_idx",
    "validate_upload",
]
