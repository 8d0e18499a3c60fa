"""A small per-process LRU of parsed data sets (a worker training ten MNIST jobs parses it once)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from worker.datasets.base import RawSplits

MAX_ENTRIES = 4


class RawCache:
    """``get(key, loader)`` returns the cached RawSplits for ``key`` or loads and keeps it.

    Cached arrays are made read-only so that no caller can change what the next job sees.
    Threads asking for the same key wait for one load. ``loads`` counts real loads.
    """

    def __init__(self, max_entries: int = MAX_ENTRIES):
        self.max_entries = max_entries
        self.loads = 0
        self._entries: OrderedDict[tuple, RawSplits] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple, threading.Lock] = {}

    def get(self, key: tuple, loader: Callable[[], RawSplits]) -> RawSplits:
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # per key: parsing MNIST must not block other sets
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key]
            raw = loader()
            for array in (raw.x_train, raw.y_train, raw.x_test, raw.y_test):
                if array is not None:
                    array.flags.writeable = False
            with self._lock:
                self.loads += 1
                self._entries[key] = raw
                while len(self._entries) > self.max_entries:
                    evicted, _ = self._entries.popitem(last=False)
                    self._key_locks.pop(evicted, None)
            return raw

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._key_locks.clear()
            self.loads = 0


RAW_CACHE = RawCache()
