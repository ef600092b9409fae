"""Save, verify and load trained models: pickles plus ``manifest.json``.

Layout of an output directory::

    Output/
      manifest.json              <- the commit point: replaced atomically, last
      latest -> runs/<version>   <- convenience link for people
      runs/<version>/
        models/<domain>-<kind>.pkl
        data.csv  metrics.json  normality.json  holdout.json  report.md  figures/

A run is written into its own ``runs/<version>`` directory first; only when everything is
on disk is ``manifest.json`` replaced (``os.replace``). A run that fails at any point - bad
data, a full disk - leaves the previous manifest and the files it names untouched.

Loading trusts nothing but the manifest's directory: every pickle is read only after its
path resolves inside that directory and its sha256 matches the manifest, and the library
versions that wrote it equal the running ones (pickles are not portable across versions).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pandas as pd

from MLPipeline.config import DOMAINS, MANIFEST_NAME, MANIFEST_SCHEMA_VERSION, MONTH_FREQ
from MLPipeline.months import parse_month

#: Libraries whose version must match between training and serving for pickles to load safely.
PINNED_LIBRARIES = ("numpy", "scipy", "pandas", "scikit-learn", "statsmodels")  # statsmodels: the ETS member
RUNS_DIR = "runs"
KEEP_RUNS = 3


class ArtifactError(RuntimeError):
    """The saved models cannot be used; the message says why."""


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
        self.run_dir = self.output_dir / RUNS_DIR / self.version
        if self.run_dir.exists():
            raise ArtifactError(f"run directory already exists: {self.run_dir}")
        self.run_dir.mkdir(parents=True)

    def relative(self, path: Path) -> str:
        return path.relative_to(self.output_dir).as_posix()

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

    def write_model(self, domain: str, kind: str, model) -> Path:
        payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        path = self.write_bytes(f"models/{domain}-{kind}.pkl", payload)
        self.artifacts.append(
            {"domain": domain, "kind": kind, "file": self.relative(path), "sha256": sha256_bytes(payload),
             **model.describe()}
        )
        return path

    def commit(self, manifest: dict) -> dict:
        """Fsync the run, then atomically publish ``manifest.json``; prune old runs."""
        manifest = {
            "schema_version": MANIFEST_SCHEMA_VERSION,
            "model_version": self.version,
            "run_dir": self.relative(self.run_dir),
            **manifest,
            "libraries": library_versions(),
            "artifacts": self.artifacts,
            "files": self.files,
        }
        _fsync_tree(self.run_dir)
        write_atomic(self.output_dir / MANIFEST_NAME, json_bytes(manifest))
        _point_latest(self.output_dir, self.run_dir)
        prune_runs(self.output_dir, keep=KEEP_RUNS)
        return manifest

    def abort(self) -> None:
        shutil.rmtree(self.run_dir, ignore_errors=True)


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


def current_run(output_dir: Path) -> str | None:
    try:
        return json.loads((Path(output_dir) / MANIFEST_NAME).read_text()).get("run_dir")
    except (OSError, ValueError, AttributeError):
        return None


def prune_runs(output_dir: Path, keep: int = KEEP_RUNS) -> None:
    """Delete all but the newest ``keep`` runs, never the one the manifest names."""
    runs_dir = Path(output_dir) / RUNS_DIR
    if not runs_dir.is_dir():
        return
    current = current_run(output_dir)
    runs = sorted((p for p in runs_dir.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)
    for old in runs[keep:]:
        if old.relative_to(output_dir).as_posix() != current:
            shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------- loading
@dataclass
class ModelBundle:
    """Everything the service needs from one verified run."""

    version: str
    manifest: dict
    models: dict[tuple[str, str], object]
    preferred: dict[str, str]
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    trained_at: str
    directory: Path
    history: pd.DataFrame
    holdout: dict[tuple[str, str], pd.DataFrame]


def _inside(directory: Path, relative: str) -> Path:
    path = (directory / relative).resolve()
    if not path.is_relative_to(directory.resolve()):
        raise ArtifactError(f"manifest names a file outside the model directory: {relative!r}")
    return path


def read_manifest(output_dir: Path) -> dict:
    path = Path(output_dir) / MANIFEST_NAME
    if not path.exists():
        raise ArtifactError(f"no trained model: {path} does not exist (run `python Engine.py`)")
    try:
        manifest = json.loads(path.read_text())
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
        payload = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"model file {relative} is missing or unreadable: {exc.strerror}") from None
    if sha256_bytes(payload) != expected_sha256:
        raise ArtifactError(f"model file {relative} does not match its sha256 in the manifest (corrupt or tampered)")
    return payload


def check_versions(manifest: dict) -> None:
    saved, running = manifest.get("libraries", {}), library_versions()
    diffs = [f"{n} {saved.get(n)} (saved) vs {running[n]} (running)" for n in PINNED_LIBRARIES if saved.get(n) != running[n]]
    if diffs:
        raise ArtifactError("models were saved with different library versions: " + "; ".join(diffs)
                            + "; retrain with `python Engine.py`")


def load_bundle(output_dir: str | Path) -> ModelBundle:
    """Verify and load the run named by ``<output_dir>/manifest.json``. Raises ArtifactError."""
    output_dir = Path(output_dir)
    manifest = read_manifest(output_dir)
    try:
        check_versions(manifest)
        files = manifest["files"]
        models = {}
        for art in manifest["artifacts"]:
            payload = verified_bytes(output_dir, art["file"], art["sha256"])
            try:
                models[(art["domain"], art["kind"])] = pickle.loads(payload)
            except Exception as exc:  # a verified pickle that still fails: wrong code version
                raise ArtifactError(f"model file {art['file']} could not be unpickled: {exc}") from None
        run_dir = manifest["run_dir"]
        data_rel = f"{run_dir}/data.csv"
        history = pd.read_csv(
            io.BytesIO(verified_bytes(output_dir, data_rel, files[data_rel])), index_col="month",
            parse_dates=["month"],
        )
        history.index = pd.DatetimeIndex(history.index, freq=MONTH_FREQ, name="month")
        holdout_rel = f"{run_dir}/holdout.json"
        holdout = holdout_frames(json.loads(verified_bytes(output_dir, holdout_rel, files[holdout_rel])))
        preferred = dict(manifest["preferred"])
        missing = [d for d in preferred if (d, preferred[d]) not in models]
        if missing or not models:
            raise ArtifactError(f"manifest prefers models that are not listed: {', '.join(missing) or 'none listed'}")
        window = manifest["train_window"]
        return ModelBundle(
            version=manifest["model_version"],
            manifest=manifest,
            models=models,
            preferred=preferred,
            train_start=parse_month(window["start"]),
            train_end=parse_month(window["end"]),
            trained_at=manifest["trained_at"],
            directory=output_dir,
            history=history,
            holdout=holdout,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"manifest is incomplete or malformed ({type(exc).__name__}: {exc}); retrain") from None


def holdout_records(holdout: dict[tuple[str, str], pd.DataFrame]) -> list[dict]:
    """Holdout frames -> JSON rows (domain, kind, month, actual, mean, std, bounds)."""
    rows = []
    for (domain, kind), frame in holdout.items():
        for month, values in frame.iterrows():
            rows.append({"domain": domain, "kind": kind, "month": month.strftime("%Y-%m"),
                         **{k: float(v) for k, v in values.items()}})
    return rows


def holdout_frames(rows: list[dict]) -> dict[tuple[str, str], pd.DataFrame]:
    frame = pd.DataFrame(rows)
    out = {}
    if frame.empty:
        return out
    for (domain, kind), group in frame.groupby(["domain", "kind"], sort=False):
        g = group.drop(columns=["domain", "kind"]).copy()
        g.index = pd.DatetimeIndex([parse_month(m) for m in g.pop("month")], name="month")
        out[(domain, kind)] = g
    order = {d: i for i, d in enumerate(DOMAINS)}
    return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])))
