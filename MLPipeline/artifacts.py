"""Save, verify and load trained models: pickles plus ``manifest.json``.

Layout of an output directory::

    Output/
      manifest.json              <- the commit point: replaced atomically, last
      latest -> runs/<version>   <- convenience link for people
      .engine.lock               <- held by the one Engine.py run writing here
      served.jsonl               <- one line per publish, promote and rollback (the rollback stack)
      runs/<version>/
        manifest.json            <- this run's manifest, published or not (what a promote publishes)
        models/shard-<n>.bin         <- models, pickled one after another (MODELS_PER_SHARD / SHARD_BYTES)
        tables.npy  table_index.npy   <- every univariate preferred model's served months (served_tables)
        data.csv  metrics.json  normality.json  holdout.json  report.md  figures/

File names never contain a series id (ids are data: they may hold ``/``, ``..`` or anything
else); the manifest maps ids to files. Models are packed in shards, so a run of 10,000 series is a few
dozen model files, not 10,000: the manifest's ``files`` holds each shard's sha256 (every shard is
hashed when a bundle loads), and each ``artifacts`` entry the shard, the offset and length of its
pickle and that pickle's own sha256 (checked when a server unpickles that one model).

A run is written into ``runs/.partial-<version>`` first and renamed to ``runs/<version>`` when
everything is on disk; only then is ``manifest.json`` replaced (``os.replace``). A run that fails at
any point - bad data, a full disk, a kill - leaves the previous manifest and the files it names
untouched; the next run removes what a killed one left behind. A run the champion/challenger gate
keeps as a candidate is committed the same way except for that last step.

Loading trusts nothing but the manifest's directory: the manifest and every file it names are
read only if their path resolves inside that directory and they are regular files (a FIFO or a
device would block or never end), each pickle only after its sha256 matches the manifest, and
only when the library versions that wrote it equal the running ones (pickles are not portable
across versions). What a server needs to know of a model without unpickling it (its first month,
regressors, whether it sums a path) is written into its manifest entry when it is saved.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import mmap
import os
import pickle
import platform
import shutil
import stat
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from MLPipeline import served_tables
from MLPipeline.calendars import MONTHLY, Calendar, calendar_for
from MLPipeline.config import MANIFEST_NAME, MANIFEST_SCHEMA_VERSION
from MLPipeline.intervals import interval_columns
from MLPipeline.panel import Panel, Series

#: Libraries whose version must match between training and serving for pickles to load safely.
PINNED_LIBRARIES = ("numpy", "scipy", "pandas", "scikit-learn", "statsmodels")  # statsmodels: the ETS member
RUNS_DIR = "runs"
KEEP_RUNS = 3  # runs kept by default (Engine.py --keep N); the served one is never removed
SERVED_LOG = "served.jsonl"
#: a shard is closed when it holds this many models or bytes (a lazy load reads only its model's bytes)
MODELS_PER_SHARD = 256
SHARD_BYTES = 8 << 20
PARTIAL_PREFIX = ".partial-"
LOCK_NAME = ".engine.lock"


class ArtifactError(RuntimeError):
    """The saved models cannot be used; the message says why."""


class OutputBusy(OSError):
    """Another Engine.py run holds the output directory's lock."""


def series_key(series_id: str) -> str:
    """The name a series' files get: 16 hex digits of the id's sha256 (ids are data, not file names)."""
    return hashlib.sha256(series_id.encode("utf-8")).hexdigest()[:16]


class RunLock:
    """An exclusive, non-blocking lock on ``<output>/.engine.lock`` for one training run.

    A second run into the same directory fails at once with :class:`OutputBusy` naming the holder;
    the lock goes with the process, so a killed run never leaves it held.
    """

    def __init__(self, output_dir: str | os.PathLike):
        self.path = Path(output_dir) / LOCK_NAME
        self._file = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise OutputBusy(f"another Engine.py run is writing to {self.path.parent} ({holder}); wait for it "
                             "to finish or use another --output") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
        handle.flush()
        self._file = handle
        remove_partial_runs(self.path.parent)
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()  # releases the lock
            self._file = None


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    versions.update({name: metadata.version(name) for name in PINNED_LIBRARIES})
    return versions


def sha256_bytes(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temporary file in the same directory + fsync + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the server may run as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=False, allow_nan=False, default=str) + "\n").encode()


@dataclass
class RunWriter:
    """Collects a run's files under ``<output>/runs/<version>/`` and commits it with the manifest."""

    output_dir: Path
    version: str
    artifacts: list[dict] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256

    def __post_init__(self):
        self.output_dir = Path(self.output_dir)
        self.final_dir = self.output_dir / RUNS_DIR / self.version
        self.run_dir = self.output_dir / RUNS_DIR / f"{PARTIAL_PREFIX}{self.version}"
        if self.final_dir.exists() or self.run_dir.exists():
            raise ArtifactError(f"run directory already exists: {self.final_dir}")
        self.run_dir.mkdir(parents=True)
        self._keys: dict[str, str] = {}
        self._shard = bytearray()
        self._shard_entries: list[dict] = []
        self._shards = 0

    def relative(self, path: Path) -> str:
        """Where ``path`` (under the partial directory) will be once the run is committed."""
        return (self.final_dir / path.relative_to(self.run_dir)).relative_to(self.output_dir).as_posix()

    def write_bytes(self, name: str, payload: bytes) -> Path:
        path = self.run_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
        self.files[self.relative(path)] = sha256_bytes(payload)
        return path

    def write_json(self, name: str, obj) -> Path:
        return self.write_bytes(name, json_bytes(obj))

    def add_file(self, path: Path) -> None:
        """Record a file already written under the run directory (e.g. a figure)."""
        self.files[self.relative(path)] = sha256_file(path)

    def write_model(self, series_id: str, kind: str, model) -> Path:
        key = series_key(series_id)
        if self._keys.setdefault(key, series_id) != series_id:  # a 64-bit hash collision: refuse, never overwrite
            raise ArtifactError(f"series {series_id!r} and {self._keys[key]!r} share the file key {key}")
        payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        if self._shard_entries and (len(self._shard_entries) >= MODELS_PER_SHARD
                                    or len(self._shard) + len(payload) > SHARD_BYTES):
            self._close_shard()
        entry = {"series": series_id, "kind": kind, "offset": len(self._shard), "length": len(payload),
                 "sha256": sha256_bytes(payload), **model_facts(model)}
        self._shard += payload
        self._shard_entries.append(entry)
        self.artifacts.append(entry)

    def _close_shard(self) -> None:
        if not self._shard_entries:
            return
        path = self.write_bytes(f"models/shard-{self._shards:05d}.bin", bytes(self._shard))
        for entry in self._shard_entries:
            entry["file"] = self.relative(path)
        self._shards += 1
        self._shard, self._shard_entries = bytearray(), []

    def write_tables(self, tables: list[tuple[int, np.ndarray | None]]) -> None:
        """The month tables of every series, in manifest order (MLPipeline.served_tables)."""
        width = len(interval_columns(served_tables.TABLE_LEVELS))
        values, index = served_tables.pack(tables, width)
        self.write_bytes(served_tables.TABLES_NAME, values)
        self.write_bytes(served_tables.TABLE_INDEX_NAME, index)

    def commit(self, manifest: dict, publish: bool = True, keep: int = KEEP_RUNS) -> dict:
        """Fsync the run, then atomically publish ``manifest.json`` (unless ``publish`` is false: a
        candidate, kept for ``Engine.py runs promote``); prune old runs."""
        self._close_shard()
        manifest = {
            "schema_version": MANIFEST_SCHEMA_VERSION,
            "model_version": self.version,
            "run_dir": self.final_dir.relative_to(self.output_dir).as_posix(),
            **manifest,
            "libraries": library_versions(),
            "artifacts": self.artifacts,
            "files": self.files,
        }
        (self.run_dir / MANIFEST_NAME).write_bytes(json_bytes(manifest))
        _fsync_tree(self.run_dir)
        os.replace(self.run_dir, self.final_dir)
        _fsync_dir(self.final_dir.parent)
        if publish:
            publish_manifest(self.output_dir, manifest, "trained")
        prune_runs(self.output_dir, keep=keep)
        return manifest

    def abort(self) -> None:
        shutil.rmtree(self.run_dir, ignore_errors=True)


def model_facts(model) -> dict:
    """What a server asks of a model before (or instead of) unpickling it: its manifest entry's fields."""
    calendar = getattr(model, "calendar_", MONTHLY)  # models of other frequencies carry theirs
    facts = {"first": calendar.label(calendar.ordinal(model.first_month())), "regressors": list(model.regressors_),
             "sums_path": bool(model.sums_path())}
    kernel = getattr(model, "kernel_", None)
    lml = getattr(model, "log_marginal_likelihood_", None)
    if kernel is not None:
        facts["kernel"] = str(kernel)
    if lml is not None and np.isfinite(lml):
        facts["log_marginal_likelihood"] = float(lml)
    return facts


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_partial_runs(output_dir: Path) -> None:
    """Delete ``runs/.partial-*`` left by a run that was killed (call with the run lock held)."""
    runs_dir = Path(output_dir) / RUNS_DIR
    if runs_dir.is_dir():
        for partial in runs_dir.glob(f"{PARTIAL_PREFIX}*"):
            shutil.rmtree(partial, ignore_errors=True)


def _fsync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


def _point_latest(output_dir: Path, run_dir: Path) -> None:
    link = output_dir / "latest"
    tmp = output_dir / ".latest.tmp"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_dir.relative_to(output_dir))
        os.replace(tmp, link)
    except OSError:
        pass  # a convenience only (some filesystems have no symlinks)


def publish_manifest(output_dir: Path, manifest: dict, action: str) -> None:
    """Make ``manifest`` the served one (one atomic rename) and record it in ``served.jsonl``.

    Running services follow the new manifest by themselves (service.registry).
    """
    output_dir = Path(output_dir)
    write_atomic(output_dir / MANIFEST_NAME, json_bytes(manifest))
    _point_latest(output_dir, output_dir / manifest["run_dir"])
    line = json.dumps({"version": manifest["model_version"], "action": action,
                       "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    with open(output_dir / SERVED_LOG, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def current_run(output_dir: Path) -> str | None:
    try:
        return json.loads((Path(output_dir) / MANIFEST_NAME).read_text()).get("run_dir")
    except (OSError, ValueError, AttributeError):
        return None


def prune_runs(output_dir: Path, keep: int = KEEP_RUNS) -> None:
    """Delete all but the newest ``keep`` runs, never the one the manifest names."""
    keep = max(1, keep)
    runs_dir = Path(output_dir) / RUNS_DIR
    if not runs_dir.is_dir():
        return
    current = current_run(output_dir)
    runs = sorted((p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name, reverse=True)
    for old in runs[keep:]:
        if old.relative_to(output_dir).as_posix() != current:
            shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------- loading
@dataclass(frozen=True)
class SeriesInfo:
    """What the manifest says about one trained series (periods as ordinals of the run's calendar)."""

    id: str
    first: int
    last: int
    preferred: str
    kinds: tuple[str, ...]
    uses_regressors: bool
    holdout: dict | None = None
    notes: tuple[str, ...] = ()
    mean_volume: float = 0.0

    @classmethod
    def from_manifest(cls, entry: dict, calendar: Calendar = MONTHLY) -> SeriesInfo:
        return cls(str(entry["id"]), calendar.ordinal(entry["first"]),
                   calendar.ordinal(entry["last"]), str(entry["preferred"]), tuple(entry["kinds"]),
                   bool(entry["uses_regressors"]), entry.get("holdout"), tuple(entry.get("notes", ())),
                   float(entry.get("mean_volume", 0.0)))


@dataclass
class ModelBundle:
    """Everything the service needs from one verified run."""

    version: str
    manifest: dict
    models: dict[tuple[str, str], object]
    series: dict[str, SeriesInfo]  # in data order
    regressors: tuple[str, ...]
    trained_at: str
    directory: Path
    history: Panel
    holdout: Mapping[tuple[str, str], pd.DataFrame]
    frequency: str = "monthly"
    calendar: Calendar = MONTHLY
    #: tables.npy, mapped read-only, and table_index.npy (MLPipeline.served_tables)
    table_values: np.ndarray | None = None
    table_index: np.ndarray | None = None

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self.series)

    @property
    def preferred(self) -> dict[str, str]:
        return {sid: info.preferred for sid, info in self.series.items()}

    @property
    def train_start(self) -> pd.Timestamp:
        """The first period of any series (a month start for monthly models)."""
        return self.calendar.index([self.calendar.ordinal(self.manifest["train_window"]["start"])])[0]

    @property
    def train_end(self) -> pd.Timestamp:
        """The last period of any series (a month start for monthly models)."""
        return self.calendar.index([self.calendar.ordinal(self.manifest["train_window"]["end"])])[0]


def _inside(directory: Path, relative: str) -> Path:
    path = (directory / relative).resolve()
    if not path.is_relative_to(directory.resolve()):
        raise ArtifactError(f"manifest names a file outside the model directory: {relative!r}")
    return path


def read_regular(path: Path, name: str) -> bytes:
    """The bytes of ``path`` if it is a regular file; anything else is refused without waiting on it.

    O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, for ever.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ArtifactError(f"{name} is not a regular file (a FIFO, device or directory); refusing it")
        return fh.read()


def read_manifest(output_dir: Path) -> dict:
    path = Path(output_dir) / MANIFEST_NAME
    if not path.exists():
        raise ArtifactError(f"no trained model: {path} does not exist (run `python Engine.py`)")
    if not path.resolve().is_relative_to(Path(output_dir).resolve()):
        raise ArtifactError(f"manifest {path} resolves outside the model directory; refusing it")
    try:
        manifest = json.loads(read_regular(path, MANIFEST_NAME))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"manifest {path} is unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("schema_version") != MANIFEST_SCHEMA_VERSION:
        raise ArtifactError(
            f"manifest {path} has schema version {manifest.get('schema_version') if isinstance(manifest, dict) else '?'}"
            f", expected {MANIFEST_SCHEMA_VERSION}; retrain with `python Engine.py`"
        )
    return manifest


def verified_bytes(output_dir: Path, relative: str, expected_sha256: str) -> bytes:
    """Read a file named by the manifest, refusing it unless its sha256 matches."""
    path = _inside(Path(output_dir), relative)
    try:
        payload = read_regular(path, f"model file {relative}")
    except OSError as exc:
        raise ArtifactError(f"model file {relative} is missing or unreadable: {exc.strerror}") from None
    if sha256_bytes(payload) != expected_sha256:
        raise ArtifactError(f"model file {relative} does not match its sha256 in the manifest (corrupt or tampered)")
    return payload


def verified_file(output_dir: Path, relative: str, expected_sha256: str):
    """An open binary file named by the manifest, at offset 0, after its sha256 matched.

    The file is hashed in chunks (never held in memory whole); the caller reads or maps this same
    open file, so what it uses is what was checked, even if the name is replaced meanwhile.
    """
    path = _inside(Path(output_dir), relative)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ArtifactError(f"model file {relative} is missing or unreadable: {exc.strerror}") from None
    fh = os.fdopen(fd, "rb")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ArtifactError(f"model file {relative} is not a regular file (a FIFO, device or directory); "
                                "refusing it")
        digest = hashlib.sha256()
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
        if digest.hexdigest() != expected_sha256:
            raise ArtifactError(f"model file {relative} does not match its sha256 in the manifest (corrupt or "
                                "tampered)")
        fh.seek(0)
        return fh
    except BaseException:
        fh.close()
        raise


def verify_file(output_dir: Path, relative: str, expected_sha256: str) -> int:
    """Refuse a file named by the manifest unless its sha256 matches (read in chunks, not kept); its size."""
    with verified_file(output_dir, relative, expected_sha256) as fh:
        return os.fstat(fh.fileno()).st_size


def mapped_array(output_dir: Path, relative: str, expected_sha256: str, dtype) -> np.ndarray:
    """A verified ``.npy`` file as a read-only array mapped from the page cache (not copied).

    Every process that maps the file shares its pages. The array stays valid after the file is
    unlinked (a pruned run); files of a run are never rewritten in place.
    """
    with verified_file(output_dir, relative, expected_sha256) as fh:
        try:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, found = read_header(fh)
            if found != np.dtype(dtype) or fortran:
                raise ValueError(f"holds {found}{' (Fortran order)' if fortran else ''}, expected {np.dtype(dtype)}")
            offset = fh.tell()
            if not np.prod(shape):
                return np.empty(shape, dtype=found)
            buffer = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)  # stays mapped after the file closes
            return np.ndarray(shape, dtype=found, buffer=buffer, offset=offset)
        except (ValueError, TypeError) as exc:
            raise ArtifactError(f"model file {relative} is not a usable array: {exc}") from None


def check_versions(manifest: dict) -> None:
    saved, running = manifest.get("libraries", {}), library_versions()
    diffs = [f"{n} {saved.get(n)} (saved) vs {running[n]} (running)" for n in PINNED_LIBRARIES if saved.get(n) != running[n]]
    if diffs:
        raise ArtifactError("models were saved with different library versions: " + "; ".join(diffs)
                            + "; retrain with `python Engine.py`")


def model_bytes(output_dir: Path, art: dict) -> bytes:
    """The pickle of one manifest ``artifacts`` entry (its bytes of its shard), after its sha256 matched."""
    relative = art["file"]
    path = _inside(Path(output_dir), relative)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ArtifactError(f"model file {relative} is missing or unreadable: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ArtifactError(f"model file {relative} is not a regular file (a FIFO, device or directory); "
                                "refusing it")
        payload = os.pread(fd, int(art["length"]), int(art["offset"]))
    finally:
        os.close(fd)
    if sha256_bytes(payload) != art["sha256"]:
        raise ArtifactError(f"model file {relative} does not match its sha256 in the manifest (corrupt or tampered) "
                            f"for the {art['kind']!r} model of {art['series']!r}")
    return payload


def load_model(output_dir: Path, art: dict):
    """The model of one manifest ``artifacts`` entry, after its sha256 matched. Raises ArtifactError."""
    payload = model_bytes(output_dir, art)
    try:
        return pickle.loads(payload)
    except Exception as exc:  # a verified pickle that still fails: wrong code version
        raise ArtifactError(f"model file {art['file']} could not be unpickled: {exc}") from None


def load_bundle(output_dir: str | Path, model_store=None) -> ModelBundle:
    """Verify and load the run named by ``<output_dir>/manifest.json``. Raises ArtifactError.

    ``model_store(output_dir, artifacts)``, when given, builds the mapping (series, kind) -> model
    instead of loading every model now (the service's lazy store); every model file's sha256 is
    still checked now, so a corrupt or missing one refuses the bundle either way.
    """
    output_dir = Path(output_dir)
    manifest = read_manifest(output_dir)
    try:
        check_versions(manifest)
        files = manifest["files"]
        if model_store is not None:
            _verify_shards(output_dir, manifest["artifacts"], files)
            models = model_store(output_dir, manifest["artifacts"])
        else:
            models = {(art["series"], art["kind"]): load_model(output_dir, art) for art in manifest["artifacts"]}
        run_dir = manifest["run_dir"]
        frequency = manifest.get("frequency", "monthly")
        calendar = calendar_for(frequency, manifest["train_window"]["start"])
        series = {}
        for entry in manifest["series"]:
            info = SeriesInfo.from_manifest(entry, calendar)
            series[info.id] = info
        regressors = tuple(manifest["regressors"])
        data_rel = f"{run_dir}/data.csv"
        history = history_panel(verified_bytes(output_dir, data_rel, files[data_rel]), series, regressors, calendar)
        holdout_rel = f"{run_dir}/holdout.json"
        holdout = holdout_frames(json.loads(verified_bytes(output_dir, holdout_rel, files[holdout_rel])), series,
                                 calendar)
        values, index = _tables(output_dir, run_dir, files, len(series))
        missing = [sid for sid, info in series.items() if (sid, info.preferred) not in models]
        if missing or not models:
            raise ArtifactError(f"manifest prefers models that are not listed: {', '.join(map(repr, missing[:5])) or 'none listed'}")
        return ModelBundle(
            version=manifest["model_version"],
            manifest=manifest,
            models=models,
            series=series,
            regressors=regressors,
            trained_at=manifest["trained_at"],
            directory=output_dir,
            history=history,
            holdout=holdout,
            frequency=frequency,
            calendar=calendar,
            table_values=values,
            table_index=index,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"manifest is incomplete or malformed ({type(exc).__name__}: {exc}); retrain") from None


def _verify_shards(output_dir: Path, artifacts: list[dict], files: dict) -> None:
    """Every model shard matches its sha256 and holds the bytes its entries point at (none unpickled)."""
    sizes = {}
    for art in artifacts:
        relative = art["file"]
        if relative not in sizes:
            if relative not in files:
                raise ArtifactError(f"model file {relative} has no sha256 in the manifest")
            sizes[relative] = verify_file(output_dir, relative, files[relative])
        if not 0 <= int(art["offset"]) <= int(art["offset"]) + int(art["length"]) <= sizes[relative]:
            raise ArtifactError(f"model file {relative} is shorter than the manifest says")


def _tables(output_dir: Path, run_dir: str, files: dict, n_series: int) -> tuple[np.ndarray, np.ndarray]:
    """The run's month tables (mapped) and their index, checked against each other."""
    values_rel = f"{run_dir}/{served_tables.TABLES_NAME}"
    index_rel = f"{run_dir}/{served_tables.TABLE_INDEX_NAME}"
    values = mapped_array(output_dir, values_rel, files[values_rel], np.float64)
    index = np.array(mapped_array(output_dir, index_rel, files[index_rel], np.int64))  # small: copied
    width = len(interval_columns(served_tables.TABLE_LEVELS))
    fits = values.ndim == 2 and values.shape[1] == width and index.shape == (n_series, 3)
    if fits:
        rows, counts = index[:, served_tables.INDEX_ROW], index[:, served_tables.INDEX_ROWS]
        fits = not ((counts < 0).any() or (rows < 0).any() or (rows + counts > len(values)).any())
    if not fits:
        raise ArtifactError(f"{values_rel} and {index_rel} do not describe the manifest's series; retrain")
    return values, index


def history_panel(payload: bytes, series: dict[str, SeriesInfo], regressors: tuple[str, ...],
                  calendar: Calendar = MONTHLY) -> Panel:
    """The saved training data (``data.csv``, long: unique_id, month (or period), y, regressors) as a Panel.

    Vectorised: rows are grouped by series with one stable sort, not one pandas group per series.
    """
    frame = pd.read_csv(io.BytesIO(payload), dtype={"unique_id": str}, keep_default_na=False)
    codes, uniques = pd.factorize(frame["unique_id"], sort=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(uniques)))])
    y = frame["y"].to_numpy(dtype=float)[order]
    x = frame[list(regressors)].to_numpy(dtype=float)[order] if regressors else None
    months = frame[calendar.field].to_numpy()[order]
    by_id = {}
    for i, sid in enumerate(uniques):
        lo, hi = bounds[i], bounds[i + 1]
        by_id[str(sid)] = Series(str(sid), calendar.ordinal(str(months[lo])), y[lo:hi],
                                 None if x is None else x[lo:hi])
    absent = [sid for sid in series if sid not in by_id]
    if absent:
        raise ArtifactError(f"data.csv lacks series {', '.join(map(repr, absent[:5]))}")
    return Panel(tuple(by_id[sid] for sid in series), regressors, calendar=calendar)


def holdout_records(holdout: dict[tuple[str, str], pd.DataFrame], calendar: Calendar = MONTHLY) -> list[dict]:
    """Holdout frames -> JSON rows (series, kind, month or period, actual, mean, std, bounds)."""
    rows = []
    for (series_id, kind), frame in holdout.items():
        labels = calendar.labels(calendar.index_ordinals(pd.DatetimeIndex(frame.index)))
        for label, (_, values) in zip(labels, frame.iterrows(), strict=True):
            rows.append({"series": series_id, "kind": kind, calendar.field: label,
                         **{k: float(v) for k, v in values.items()}})
    return rows


class HoldoutFrames(Mapping):
    """(series, kind) -> holdout frame, each built when asked for from columns parsed once.

    Building one DataFrame per series at load was most of the cost of a large panel's holdout;
    a chart or the gate asks for a few (O(its months) each).
    """

    def __init__(self, frame: pd.DataFrame, series=None, calendar: Calendar = MONTHLY):
        self._calendar = calendar
        keys = list(zip(frame["series"].astype(str), frame["kind"].astype(str), strict=True))
        codes, uniques = pd.factorize(pd.Series(keys, dtype=object), sort=False)
        order = np.argsort(codes, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(uniques)))])
        self._rows = {key: order[bounds[i]:bounds[i + 1]] for i, key in enumerate(uniques)}
        if series is not None:
            rank = {sid: i for i, sid in enumerate(series)}
            self._rows = dict(sorted(self._rows.items(), key=lambda kv: (rank.get(kv[0][0], len(rank)), kv[0][1])))
        values = frame.drop(columns=["series", "kind", calendar.field])
        self._columns = list(values.columns)
        self._values = values.to_numpy(dtype=float)
        self._months = frame[calendar.field].to_numpy()

    def __getitem__(self, key: tuple[str, str]) -> pd.DataFrame:
        rows = self._rows[key]
        calendar = self._calendar
        index = calendar.index([calendar.ordinal(str(m)) for m in self._months[rows]])
        return pd.DataFrame(self._values[rows], index=index, columns=self._columns)

    def __iter__(self):
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def holdout_frames(rows: list[dict], series=None, calendar: Calendar = MONTHLY
                   ) -> Mapping[tuple[str, str], pd.DataFrame]:
    """Inverse of :func:`holdout_records`, in the order of ``series`` (ids) when given."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return {}
    return HoldoutFrames(frame, series, calendar)
