"""The models a worker serves: loaded from the manifest once, swapped atomically on reload.

A :class:`Registry` holds at most one :class:`~service.loaded.LoadedModel` (the bundle plus what
serving needs, precomputed at load time). Loading happens when the app is created (in each gunicorn worker,
``preload_app = False``) and on ``POST /admin/reload`` — never at import time. A bundle that
fails to load, verify or predict is refused and the previous one keeps serving.

The manifest on disk is the one source of truth. Each gunicorn worker holds its own registry and,
before a request, at most once per ``sync_seconds``, compares manifest.json's identity (two stat
calls) with the one it last tried; when it changed, the worker loads it. So every worker follows a
new manifest by itself — after ``POST /admin/reload`` (which checks at once in the worker that
answers it), after a tool replaced manifest.json atomically (a promote or a rollback), or after a
restart — and a manifest that fails to load is refused by every worker the same way: each keeps
the model it serves and /ready says why the manifest on disk is not served.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import re
import threading
import time
from pathlib import Path

from MLPipeline.config import MANIFEST_NAME
from service.loaded import LoadedModel

log = logging.getLogger(__name__)


class ModelUnavailable(Exception):
    """No model is loaded; the message says why (shown by /ready and in 503 errors)."""


class ReloadRefused(Exception):
    """A bundle failed to load or verify; the message says which check failed."""


#: An absolute filesystem path inside a message (up to a quote, space or separator).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:[^\s'\"/:,;()\[\]]+/)*([^\s'\"/:,;()\[\]]*)")


def public_reason(message: str, directory: Path) -> str:
    """``message`` without absolute paths: /ready, 503s and 409s keep the reason, not the layout.

    Paths inside the model directory become relative to it ("runs/<version>/tables.npy"); any other
    absolute path is cut to its file name. The server log keeps the full message.
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
    from service.loaded import prepare
    from service.model_store import LazyModels

    try:
        bundle = load_bundle(directory, model_store=LazyModels)
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
    full (generation-2) collection walks them all (tens of ms), and requests that allocate much (a
    500-row batch) set one off every few seconds: those pauses were the p99 latency. Frozen
    objects are skipped by collections (reference counting still frees them). Unfreezing first
    lets a replaced model's reference cycles be collected on reload.
    """
    gc.unfreeze()
    gc.collect()
    _return_freed_heap()
    gc.freeze()


def _return_freed_heap() -> None:
    """Hand the heap freed after a load back to the OS (glibc keeps it for reuse otherwise).

    Parsing a large panel's manifest, data and holdout allocates and frees tens of MB of small
    objects; without this the worker's RSS keeps their high-water mark. A no-op off glibc.
    """
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def manifest_identity(directory: Path) -> tuple[int, ...] | None:
    """What tells one ``manifest.json`` from another without reading it (None when absent).

    The link itself (lstat) and what it names (stat): an atomic replace gives a new inode, an
    in-place write a new size or mtime, a re-pointed symlink a new link. Two system calls.
    """
    path = directory / MANIFEST_NAME
    try:
        link, target = path.lstat(), path.stat()
    except OSError:
        return None
    return (
        link.st_ino, link.st_mtime_ns,
        target.st_dev, target.st_ino, target.st_size, target.st_mtime_ns, target.st_ctime_ns,
    )  # fmt: skip


class Registry:
    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        sync_seconds: float = 1.0,
        retry_seconds: float = 10.0,
    ):
        self.directory = Path(directory)
        self.sync_seconds = sync_seconds
        self.retry_seconds = retry_seconds
        self._current: LoadedModel | None = None
        self._reason = "models not loaded yet"
        #: the manifest identity last tried, and why it was refused (None: it is the one served)
        self._tried: tuple[int, ...] | None = None
        self._refused: str | None = None
        self._lock = threading.Lock()
        self._next_check = 0.0

    # ------------------------------------------------------------------ reading
    @property
    def current(self) -> LoadedModel | None:
        return self._current

    @property
    def reason(self) -> str | None:
        return None if self._current is not None else self._reason

    @property
    def refused(self) -> str | None:
        """While a model serves: why the manifest now on disk is not the one serving (else None)."""
        return self._refused if self._current is not None else None

    def get(self) -> LoadedModel:
        model = self._current  # one read: a concurrent reload cannot split a request
        if model is None:
            raise ModelUnavailable(self._reason)
        return model

    # ------------------------------------------------------------------ loading
    def start(self) -> None:
        """First load; failure leaves the worker running but not ready (no crash loop)."""
        try:
            self.reload()
        except ReloadRefused as exc:
            log.warning("models not loaded: %s", exc)

    def reload(self) -> tuple[str | None, LoadedModel]:
        """Load the manifest now (``POST /admin/reload``): verified again, with an empty answer
        cache, even if unchanged. Returns (previous version, serving).

        Raises ReloadRefused when the manifest on disk cannot be served; the previous model, if
        any, keeps serving.
        """
        with self._lock:
            previous = self._current
            identity = manifest_identity(self.directory)
            self._load_locked(identity, force=True)
            return (previous.version if previous else None), self._current

    def refresh(self) -> None:
        """Cheap per-request hook: follow manifest.json when it changed; retry when nothing loaded.

        At most once per ``sync_seconds`` (``retry_seconds`` while nothing is loaded) it costs two
        stat calls; only a changed manifest is read. A refused manifest is not tried again until it
        changes (or ``POST /admin/reload`` asks), so every worker ends up refusing it the same way.
        """
        now = time.monotonic()
        if now < self._next_check:
            return
        current = self._current
        self._next_check = now + (self.sync_seconds if current is not None else self.retry_seconds)
        identity = manifest_identity(self.directory)
        if current is not None and identity == self._tried:
            return
        if not self._lock.acquire(blocking=False):
            return  # another thread of this worker is loading already
        try:
            self._load_locked(identity)
        except ReloadRefused as exc:
            if current is None:
                log.warning("models still not loaded: %s", exc)
            else:
                log.warning("manifest refused, still serving %s: %s", current.version, exc)
        finally:
            self._lock.release()

    def _load_locked(self, identity: tuple[int, ...] | None, *, force: bool = False) -> None:
        """Serve the manifest behind ``identity`` if it verifies (raises ReloadRefused if not).

        ``identity`` is taken before reading: a manifest replaced while loading is seen as changed
        at the next check and loaded then. Unless ``force``d, a manifest that says what the served
        one said (touched, or copied over itself) is not loaded again.
        """
        self._tried = identity
        current = self._current
        try:
            if not force and current is not None and _same_manifest(self.directory, current):
                self._refused = None  # touched or copied, not changed: nothing to load
                return
            loaded = _load(self.directory)
        except ReloadRefused as exc:
            self._refused = str(exc)
            if current is None:
                self._reason = str(exc)
            raise
        self._current = loaded  # a single reference assignment: atomic for readers
        self._refused = None
        log.info("serving model version %s from %s", loaded.version, self.directory)
        settle_heap()


def _same_manifest(directory: Path, model: LoadedModel) -> bool:
    """Whether manifest.json still says what the served model's manifest said."""
    from MLPipeline.artifacts import ArtifactError, read_manifest

    try:
        return read_manifest(directory) == model.bundle.manifest
    except ArtifactError as exc:
        raise _refuse(str(exc), directory) from None
