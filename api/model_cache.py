"""An in-process LRU cache of loaded models, bounded by the bytes of their arrays.

Predictions on a cached model need no Redis round trip: the entry remembers its tenant, so the
ownership check is local too. Deleting a model evicts it here and, through a Redis pub/sub
message, in every other API process (see ``api.invalidation``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class CachedModel:
    """A loaded model and what prediction needs to know about it."""

    model_id: str
    tenant: str | None
    model: Any  # nnlib.Model
    metadata: dict
    input_shape: tuple[int, ...]
    nbytes: int
    extra: dict = field(default_factory=dict)


def model_nbytes(model: Any) -> int:
    """Bytes held by the model's parameters and buffers."""
    arrays = list(model.parameters().values())
    buffers = getattr(model, "buffers", None)
    if callable(buffers):
        arrays += list(buffers().values())
    return int(sum(np.asarray(a).nbytes for a in arrays))


class ModelCache:
    """LRU by bytes: ``put`` evicts least recently used entries until the total fits."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, CachedModel] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, model_id: str) -> CachedModel | None:
        with self._lock:
            entry = self._entries.get(model_id)
            if entry is not None:
                self._entries.move_to_end(model_id)
            return entry

    def put(self, entry: CachedModel) -> None:
        """Cache ``entry`` unless it alone exceeds the budget."""
        if entry.nbytes > self.max_bytes:
            return
        with self._lock:
            self._pop(entry.model_id)
            self._entries[entry.model_id] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes:
                self._pop(next(iter(self._entries)))

    def evict(self, model_id: str) -> None:
        with self._lock:
            self._pop(model_id)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __contains__(self, model_id: str) -> bool:
        with self._lock:
            return model_id in self._entries

    @property
    def nbytes(self) -> int:
        return self._bytes

    def _pop(self, model_id: str) -> None:
        entry = self._entries.pop(model_id, None)
        if entry is not None:
            self._bytes -= entry.nbytes
