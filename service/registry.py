"""The models a worker serves: loaded from the manifest once, swapped atomically on reload.

A :class:`Registry` holds at most one :class:`LoadedModel` (the bundle plus what serving needs,
precomputed at load time). Loading happens when the app is created (in each gunicorn worker,
``preload_app = False``) and on ``POST /admin/reload`` — never at import time. A bundle that
fails to load, verify or predict is refused and the previous one keeps serving.

Several gunicorn workers each hold their own registry. When one accepts a reload it writes the
new version to a small marker file; the others notice it (checked at most once per
``sync_seconds``, on a request) and load the same manifest, so all workers converge.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from service.cache import PredictionCache

log = logging.getLogger(__name__)


class ModelUnavailable(Exception):
    """No model is loaded; the message says why (shown by /ready and in 503 errors)."""


class ReloadRefused(Exception):
    """A bundle failed to load or verify; the message says which check failed."""


@dataclass(frozen=True)
class LoadedModel:
    """One verified bundle plus the lookups serving needs, computed once at load time."""

    bundle: Any  # MLPipeline.artifacts.ModelBundle
    version: str
    loaded_at: str
    #: regressor values per training month (index month-start), to fill omitted inputs
    history: pd.DataFrame
    #: regressor -> value assumed for months after the training window
    assumed: dict[str, float]
    first_month: pd.Timestamp
    last_month: pd.Timestamp
    info: dict[str, Any] = field(default_factory=dict)
    #: (domain, kind) -> service.tables.MonthTable, for the preferred models without regressors
    tables: dict[tuple[str, str], Any] = field(default_factory=dict, compare=False, repr=False)
    #: answers already computed for this model (service.cache); a reload starts a new one
    cache: PredictionCache = field(default_factory=PredictionCache, compare=False, repr=False)

    def forecaster(self, domain: str, kind: str):
        return self.bundle.models[(domain, kind)]

    def kind_for(self, domain: str, requested: str | None) -> str:
        return requested or self.bundle.preferred[domain]


#: An absolute filesystem path inside a message (up to a quote, space or separator).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:[^\s'\"/:,;()\[\]]+/)*([^\s'\"/:,;()\[\]]*)")


def public_reason(message: str, directory: Path) -> str:
    """``message`` without absolute paths: /ready, 503s and 409s keep the reason, not the layout.

    Paths inside the model directory become relative to it ("models/x.pkl"); any other absolute
    path is cut to its file name. The server log keeps the full message.
    """
    for root in {str(directory.resolve()), str(directory.absolute())}:
        message = message.replace(root + os.sep, "").replace(root, "OUTPUT_DIR")
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "/", message)


def _refuse(message: str, directory: Path) -> ReloadRefused:
    public = public_reason(message, directory)
    if public != message:
        log.warning("bundle refused: %s", message)  # the full text, paths included, for operators
    return ReloadRefused(public)


def _load(directory: Path) -> LoadedModel:
    """Load, verify and smoke-test the bundle in ``directory`` (raises ReloadRefused)."""
    from MLPipeline.artifacts import ArtifactError, load_bundle
    from service.inference import prepare

    try:
        bundle = load_bundle(directory)
    except ArtifactError as exc:
        raise _refuse(str(exc), directory) from None
    except Exception as exc:  # unpickling can fail in many ways; all mean "refuse"
        raise _refuse(
            f"cannot load models from {directory}: {type(exc).__name__}: {exc}", directory
        ) from None
    try:
        return prepare(bundle)
    except Exception as exc:
        raise _refuse(f"models in {directory} failed verification: {exc}", directory) from None


def settle_heap() -> None:
    """Take what is loaded out of the garbage collector's way.

    A worker with a bundle loaded holds ~250,000 objects (pandas, scikit-learn, statsmodels); a
    full (generation-2) collection walks them all, ~140 ms, and requests that allocate much (a
    500-row batch) set one off every few seconds: those pauses were the p99 latency. Frozen
    objects are skipped by collections (reference counting still frees them). Unfreezing first
    lets a replaced model's reference cycles be collected on reload.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _marker_path(directory: Path) -> Path:
    digest = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"callcenter-gp-reload-{digest}"


class Registry:
    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        marker: str | os.PathLike | None = None,
        sync_seconds: float = 1.0,
        retry_seconds: float = 10.0,
    ):
        self.directory = Path(directory)
        self.marker = Path(marker) if marker else _marker_path(self.directory)
        self.sync_seconds = sync_seconds
        self.retry_seconds = retry_seconds
        self._current: LoadedModel | None = None
        self._reason = "models not loaded yet"
        self._lock = threading.Lock()
        self._next_check = 0.0
        self._seen_marker = self._marker_signature()

    # ------------------------------------------------------------------ reading
    @property
    def current(self) -> LoadedModel | None:
        return self._current

    @property
    def reason(self) -> str | None:
        return None if self._current is not None else self._reason

    def get(self) -> LoadedModel:
        model = self._current  # one read: a concurrent reload cannot split a request
        if model is None:
            raise ModelUnavailable(self._reason)
        return model

    # ------------------------------------------------------------------ loading
    def start(self) -> None:
        """First load; failure leaves the worker running but not ready (no crash loop)."""
        try:
            self.reload(announce=False)
        except ReloadRefused as exc:
            log.warning("models not loaded: %s", exc)

    def reload(self, *, announce: bool = True) -> tuple[str | None, LoadedModel]:
        """Load the manifest again; swap only if it verifies. Returns (previous version, new)."""
        with self._lock:
            previous, loaded = self._reload_locked()
        if announce:
            self._announce(loaded.version)
        return previous, loaded

    def _reload_locked(self) -> tuple[str | None, LoadedModel]:
        previous = self._current
        try:
            loaded = _load(self.directory)
        except ReloadRefused as exc:
            if previous is None:
                self._reason = str(exc)
            raise
        self._current = loaded  # a single reference assignment: atomic for readers
        log.info("serving model version %s from %s", loaded.version, self.directory)
        settle_heap()
        return (previous.version if previous else None), loaded

    def refresh(self) -> None:
        """Cheap per-request hook: follow another worker's reload; retry when nothing loaded."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + (self.sync_seconds if self._current is not None else self.retry_seconds)
        signature = self._marker_signature()
        changed = signature != self._seen_marker
        self._seen_marker = signature
        current = self._current
        if current is not None and (not changed or self._marker_version() == current.version):
            return
        if not self._lock.acquire(blocking=False):
            return  # another thread of this worker is loading already
        try:
            self._reload_locked()
        except ReloadRefused as exc:
            if current is None:
                log.warning("models still not loaded: %s", exc)
            else:
                log.warning("reload refused, still serving %s: %s", current.version, exc)
        finally:
            self._lock.release()

    # ------------------------------------------------------- cross-worker marker
    def _announce(self, version: str) -> None:
        try:
            tmp = self.marker.with_name(f"{self.marker.name}.{os.getpid()}.tmp")
            tmp.write_text(version)
            os.replace(tmp, self.marker)
            self._seen_marker = self._marker_signature()
        except OSError as exc:  # other workers then keep their model until restarted
            log.warning("could not tell other workers about the reload: %s", exc)

    def _marker_signature(self) -> tuple[int, int] | None:
        try:
            st = self.marker.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_ino

    def _marker_version(self) -> str | None:
        try:
            return self.marker.read_text().strip()
        except OSError:
            return None
