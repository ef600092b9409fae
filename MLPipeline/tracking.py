"""Experiment tracking with MLflow, when ``MLFLOW_TRACKING_URI`` is set.

Every training run becomes one MLflow run (experiment ``MLFLOW_EXPERIMENT_NAME``, default
``callcenter-gp``), named and tagged with the model version: its parameters, the holdout metrics per
series (each kind) and overall (means over series, preferred kind), the gate's figures, and as
artifacts the report, the figures and the manifest. A promote or rollback tags the run it serves
(``served_at``, ``served_by``) and sets ``promoted=true`` on a promoted one.

MLflow is an optional extra (``requirements-mlflow.txt``: the mlflow-skinny client); without it, or
with a tracking server that does not answer, training and promotion go on and a warning says why:
tracking records a run, it never decides one.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

from MLPipeline.artifacts import series_key
from MLPipeline.evaluation import holdout_summary

log = logging.getLogger("MLPipeline.tracking")

TRACKING_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
DEFAULT_EXPERIMENT = "callcenter-gp"
#: Characters MLflow accepts in a metric name; series ids are data and may hold any others.
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")


def enabled() -> bool:
    return bool(os.environ.get(TRACKING_ENV))


def _mlflow():
    try:
        import mlflow
    except ImportError:
        log.warning("%s is set but mlflow is not installed (pip install -r requirements-mlflow.txt); "
                    "run not tracked", TRACKING_ENV)
        return None
    mlflow.set_tracking_uri(os.environ[TRACKING_ENV])
    mlflow.set_experiment(os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT)
    return mlflow


def series_metric_names(ids) -> dict[str, str]:
    """Series id -> the name its metrics go under: the id with unsafe characters as ``_``, or its
    file key when that name is taken by another series."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for sid in ids:
        name = _UNSAFE.sub("_", sid)[:200] or series_key(sid)
        if name in taken:
            name = series_key(sid)
        taken.add(name)
        names[sid] = name
    return names


def _params(manifest: dict, settings: dict) -> dict[str, str]:
    data = manifest.get("data", {})
    params = {
        "data_source": data.get("source"), "data_sha256": data.get("data_sha256"),
        "n_series": data.get("n_series"), "train_start": manifest["train_window"]["start"],
        "train_end": manifest["train_window"]["end"], "holdout_months": manifest.get("holdout_months"),
        "kinds": ",".join(manifest.get("kinds", [])), "regressors": ",".join(manifest.get("regressors", [])),
        "frequency": manifest.get("frequency"), **settings,
    }
    return {k: str(v) for k, v in params.items()}


def _metrics(manifest: dict) -> dict[str, float]:
    names = series_metric_names(entry["id"] for entry in manifest["series"])
    out = {f"overall/{k}": v for k, v in holdout_summary(manifest).items() if v is not None}
    for sid, kinds in manifest.get("metrics", {}).items():
        for kind, scores in kinds.items():
            out.update({f"series/{names[sid]}/{kind}/{k}": float(v) for k, v in scores.items() if v is not None})
    gate = manifest.get("gate") or {}
    if gate.get("overall"):
        out["gate/challenger_mase"] = gate["overall"]["challenger"]
        out["gate/champion_mase"] = gate["overall"]["champion"]
    return out


def log_training_run(output_dir: Path, manifest: dict, settings: dict) -> str | None:
    """Record one committed run (published or candidate). Returns the MLflow run id, or None."""
    run_dir = Path(output_dir) / manifest["run_dir"]
    version = manifest["model_version"]
    gate = manifest.get("gate") or {}
    tags = {"model_version": version, "published": str(bool(gate.get("published", True))).lower(),
            "gate_reason": str(gate.get("reason", ""))[:5000]}
    try:
        mlflow = _mlflow()
        if mlflow is None:
            return None
        with mlflow.start_run(run_name=version, tags=tags) as run:
            mlflow.log_params(_params(manifest, settings))
            mlflow.log_metrics(_metrics(manifest))
            mlflow.log_artifact(str(run_dir / "manifest.json"))
            mlflow.log_artifact(str(run_dir / "report.md"))
            if (run_dir / "figures").is_dir():
                mlflow.log_artifacts(str(run_dir / "figures"), artifact_path="figures")
            return run.info.run_id
    except Exception as exc:  # a tracking server that is down must not fail a training run
        log.warning("MLflow tracking failed, run %s not (fully) tracked: %s: %s", version, type(exc).__name__, exc)
        return None


def mark_served(version: str, action: str) -> None:
    """Tag the tracked run of ``version`` as served now (``promote`` also sets ``promoted=true``)."""
    try:
        mlflow = _mlflow()
        if mlflow is None:
            return
        client = mlflow.tracking.MlflowClient()
        experiment = client.get_experiment_by_name(os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT)
        found = client.search_runs([experiment.experiment_id], f"tags.model_version = '{version}'", max_results=1)
        if not found:
            log.warning("MLflow has no run tagged model_version=%s; not marked", version)
            return
        run_id = found[0].info.run_id
        client.set_tag(run_id, "served_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        client.set_tag(run_id, "served_by", action)
        if action == "promote":
            client.set_tag(run_id, "promoted", "true")
    except Exception as exc:
        log.warning("MLflow tracking failed, %s of %s not marked: %s: %s", action, version, type(exc).__name__, exc)
