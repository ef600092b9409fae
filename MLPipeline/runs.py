"""The run registry: the runs kept under ``<output>/runs/``, which one is served, promote and rollback.

Every committed run keeps its own ``manifest.json`` in its directory, published or kept as a
candidate by the champion/challenger gate. Promoting a run verifies its files against that manifest
(sha256, library versions) and publishes it with the same atomic replace of ``<output>/manifest.json``
a training run uses; running services follow it within a second (service.registry), without a
restart. ``served.jsonl`` records every publish: publishing and promoting push a version on the
served stack, a rollback pops the top, so repeated rollbacks walk back through what was served.
Promote and rollback hold the output's run lock, so they never interleave with a training run.
"""

from __future__ import annotations

import json
from pathlib import Path

from MLPipeline.artifacts import (
    RUNS_DIR,
    SERVED_LOG,
    ArtifactError,
    RunLock,
    check_versions,
    publish_manifest,
    verify_file,
)
from MLPipeline.config import MANIFEST_NAME
from MLPipeline.evaluation import SUMMARY_METRICS, holdout_summary

#: The holdout figures a run's summary shows (means over its series, each with its preferred kind).


class RunsError(ValueError):
    """A runs command cannot be done as asked (unknown version, nothing to roll back to, bad files)."""


def _read_json(path: Path) -> dict | None:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def served_version(output_dir: Path) -> str | None:
    manifest = _read_json(Path(output_dir) / MANIFEST_NAME)
    return None if manifest is None else manifest.get("model_version")


def run_manifests(output_dir: Path) -> list[dict]:
    """The manifests of the kept runs, newest first (runs without one - older layouts - are left out)."""
    runs_dir = Path(output_dir) / RUNS_DIR
    if not runs_dir.is_dir():
        return []
    found = []
    for run_dir in sorted(runs_dir.iterdir(), key=lambda p: p.name, reverse=True):
        if run_dir.is_dir() and not run_dir.name.startswith("."):
            manifest = _read_json(run_dir / MANIFEST_NAME)
            if manifest is not None:
                found.append(manifest)
    return found


def summary(manifest: dict, served: str | None) -> dict:
    gate = manifest.get("gate") or {}
    return {
        "version": manifest["model_version"],
        "trained_at": manifest.get("trained_at"),
        "data_end": manifest.get("train_window", {}).get("end"),
        "series": len(manifest.get("series", [])),
        "serving": manifest["model_version"] == served,
        "holdout": holdout_summary(manifest),
        "gate": {"published": gate.get("published"), "reason": gate.get("reason")},
    }


def list_runs(output_dir: Path) -> list[dict]:
    served = served_version(output_dir)
    return [summary(m, served) for m in run_manifests(output_dir)]


def run_manifest(output_dir: Path, version: str) -> dict:
    if not version or "/" in version or version.startswith("."):
        raise RunsError(f"{version!r} is not a run version (see `python Engine.py runs list`)")
    manifest = _read_json(Path(output_dir) / RUNS_DIR / version / MANIFEST_NAME)
    if manifest is None or manifest.get("model_version") != version:
        kept = ", ".join(m["model_version"] for m in run_manifests(output_dir)[:5]) or "none"
        raise RunsError(f"no run {version!r} in {Path(output_dir) / RUNS_DIR} (kept: {kept})")
    return manifest


def show_run(output_dir: Path, version: str) -> dict:
    """A run's summary with its per-series holdout figures, its gate decision and its actuals merge."""
    manifest = run_manifest(output_dir, version)
    per_series = {entry["id"]: {"kind": entry["preferred"],
                                **{k: manifest.get("metrics", {}).get(entry["id"], {}).get(entry["preferred"], {}).get(k)
                                   for k in SUMMARY_METRICS}}
                  for entry in manifest.get("series", [])}
    return {**summary(manifest, served_version(output_dir)), "per_series": per_series,
            "gate_detail": manifest.get("gate"), "actuals": manifest.get("actuals")}


def verify_run(output_dir: Path, manifest: dict) -> None:
    """Every file the manifest names (model shards included) matches its sha256, and the libraries
    match (RunsError if not)."""
    try:
        check_versions(manifest)
        for rel, digest in manifest["files"].items():
            verify_file(Path(output_dir), rel, digest)
    except ArtifactError as exc:
        raise RunsError(f"run {manifest.get('model_version')} cannot be served: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise RunsError(f"run {manifest.get('model_version')} has a malformed manifest ({exc})") from None


def served_stack(output_dir: Path) -> list[str]:
    """Versions served, oldest first: publish/promote push, rollback pops (from ``served.jsonl``)."""
    stack: list[str] = []
    try:
        lines = (Path(output_dir) / SERVED_LOG).read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash mid-write
        if event.get("action") == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != event["version"]:
                stack.append(event["version"])
        else:
            stack.append(event["version"])
    current = served_version(output_dir)
    if current is not None and (not stack or stack[-1] != current):
        stack.append(current)  # served before served.jsonl existed, or published by hand
    return stack


def promote(output_dir: Path, version: str) -> dict:
    """Serve run ``version`` (verified first). Returns its summary."""
    output_dir = Path(output_dir)
    with RunLock(output_dir):
        manifest = run_manifest(output_dir, version)
        if manifest["model_version"] == served_version(output_dir):
            raise RunsError(f"run {version} is already being served")
        verify_run(output_dir, manifest)
        publish_manifest(output_dir, manifest, "promote")
    _track(version, "promote")
    return summary(manifest, version)


def rollback(output_dir: Path) -> tuple[str | None, dict]:
    """Serve the version served before the current one. Returns (the version left, the summary served)."""
    output_dir = Path(output_dir)
    with RunLock(output_dir):
        stack = served_stack(output_dir)
        current = stack.pop() if stack else None
        while stack:
            candidate = stack[-1]
            if candidate != current:
                try:
                    manifest = run_manifest(output_dir, candidate)
                    verify_run(output_dir, manifest)
                    break
                except RunsError:
                    pass  # pruned or damaged: go further back
            stack.pop()
        else:
            raise RunsError(f"nothing to roll back to: no earlier served run is kept in {output_dir / RUNS_DIR}"
                            + (f" (serving {current})" if current else ""))
        publish_manifest(output_dir, manifest, "rollback")
    _track(manifest["model_version"], "rollback")
    return current, summary(manifest, manifest["model_version"])


def _track(version: str, action: str) -> None:
    from MLPipeline import tracking

    if tracking.enabled():
        tracking.mark_served(version, action)


def _figure(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_list(rows: list[dict]) -> str:
    """``runs list`` for people: one line per run, ``*`` marks the served one."""
    lines = [f"  {'version':<34} {'trained':<25} {'data to':<8} {'series':>6} {'MASE':>6} {'cov95':>6}  gate"]
    for r in rows:
        h = r["holdout"]
        gate = {True: "published", False: "candidate", None: "-"}[r["gate"]["published"]]
        lines.append(f"{'*' if r['serving'] else ' '} {r['version']:<34} {r['trained_at'] or '-':<25} "
                     f"{r['data_end'] or '-':<8} {r['series']:>6} {_figure(h['mase'], '.3f'):>6} "
                     f"{_figure(h['coverage_95'], '.2f'):>6}  {gate}")
    if not rows:
        lines.append("  (no runs)")
    return "\n".join(lines)
