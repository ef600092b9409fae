"""The models of a served bundle, unpickled when a request needs one, kept in a bounded LRU.

The month tables (:mod:`service.tables`) answer the common path (a preferred univariate model's
months) without a model object, and a bundle loads without unpickling any model (every file's
sha256 is checked at load; the facts requests need are in the manifest), so a worker holds only
the models that requests used lately:
regressor what-ifs, ``kind`` overrides, months a table does not hold. A model is loaded once
(concurrent requests for it wait for the one load), checked against its sha256 in the manifest
every time it is read from disk, and dropped when the least recently used one must make room.

Size: ``MODEL_CACHE_SIZE`` models per worker (default 256; at least 1).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from MLPipeline.artifacts import load_model

DEFAULT_MODELS = 256


def configured_size() -> int:
    value = os.environ.get("MODEL_CACHE_SIZE", "").strip()
    return max(int(value), 1) if value else DEFAULT_MODELS


class LazyModels(Mapping):
    """(series, kind) -> model, for the manifest's ``artifacts`` entries; loaded on first use.

    Keys, ``in`` and ``len`` read the manifest only. ``loads`` counts models read from disk.
    """

    def __init__(self, directory: Path, artifacts: list[dict], capacity: int | None = None):
        self.directory = Path(directory)
        self.capacity = configured_size() if capacity is None else max(int(capacity), 1)
        self._entries = {(art["series"], art["kind"]): art for art in artifacts}
        self._loaded: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    def __getitem__(self, key: tuple[str, str]):
        art = self._entries[key]  # KeyError for a model the manifest does not name, as a dict would
        with self._lock:  # held while loading: a model is read once however many requests wait for it
            model = self._loaded.get(key)
            if model is None:
                model = load_model(self.directory, art)
                self.loads += 1
                self._loaded[key] = model
                while len(self._loaded) > self.capacity:
                    self._loaded.popitem(last=False)
            else:
                self._loaded.move_to_end(key)
            return model

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def resident(self) -> tuple[tuple[str, str], ...]:
        """The keys of the models in memory, least recently used first."""
        with self._lock:
            return tuple(self._loaded)
