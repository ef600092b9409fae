"""A bounded LRU cache of forecaster answers, one per loaded model (a reload starts an empty one).

A forecaster call's answer is a pure function of its inputs: the model (fixed for the life of a
:class:`service.registry.LoadedModel`), the months, the regressor values of the whole call (the
difference kind sums a path whose regressors come from every month of the call, so single
rows are *not* independent: the key is the whole call) and the levels. Identical calls get the
identical array back, without the forecaster's pandas work. Arrays are stored
read-only, so no caller can change a cached answer.

Size: ``PREDICTION_CACHE_ROWS`` (default 100,000 predicted rows per worker, a few tens of MB at
most; 0 turns the cache off).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

DEFAULT_ROWS = 100_000


def configured_rows() -> int:
    value = os.environ.get("PREDICTION_CACHE_ROWS", "").strip()
    return max(int(value), 0) if value else DEFAULT_ROWS


class PredictionCache:
    def __init__(self, max_rows: int | None = None):
        self.max_rows = configured_rows() if max_rows is None else max_rows
        self._entries: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get_or_compute(
        self, key: Hashable, compute: Callable[[], Any], size: Callable[[Any], int] = len
    ) -> Any:
        """The cached answer for ``key``, else ``compute()`` (outside the lock), stored.

        Arrays are copied and frozen; other values (a request's finished rows) are stored as
        given and must not be changed by callers. ``size`` counts a value's rows for the bound.
        """
        if self.max_rows <= 0:
            return compute()
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found[0]
            self.misses += 1
        value = compute()
        if isinstance(value, np.ndarray):
            value = np.array(value, dtype=float)  # a private copy, then frozen
            value.setflags(write=False)
        rows = size(value)
        if rows > self.max_rows:
            return value
        with self._lock:
            if key not in self._entries:
                self._entries[key] = (value, rows)
                self._rows += rows
            while self._rows > self.max_rows:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._rows -= dropped
        return value
