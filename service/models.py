"""``GET /models``: the runs kept in the model directory, their holdout figures and gate decisions, and
which one this worker serves.

Read from disk on each call (``MLPipeline.runs``): a handful of small JSON files, the same view as
``python Engine.py runs list``. Promoting and rolling back stay on the command line: the service
only ever reads the model directory (see docs/operations.md, trust model).
"""

from __future__ import annotations

from flask import Blueprint, current_app

from MLPipeline import runs

bp = Blueprint("models", __name__)


@bp.get("/models")
def list_models():
    registry = current_app.extensions.get("model_registry")
    loaded = getattr(registry, "current", None)
    directory = current_app.config["OUTPUT_DIR"]
    return {
        "serving": None if loaded is None else loaded.version,
        "manifest": runs.served_version(directory),
        "runs": runs.list_runs(directory),
    }
