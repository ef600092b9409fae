"""The web layer. ``create_app(config=None)`` builds a Flask app; nothing heavy happens on import.

Configuration comes from the environment (see :data:`ENV_KEYS`) and then from ``config`` (a
mapping), which wins. Models are loaded when the app is created — in each gunicorn worker, since
``preload_app`` is off — unless ``LOAD_MODELS`` is false.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

DEFAULTS: dict[str, Any] = {
    "OUTPUT_DIR": None,  # None -> MLPipeline.config.output_dir() ($OUTPUT_DIR or Output/)
    "ADMIN_TOKEN": None,  # unset -> POST /admin/reload answers 403 (admin disabled)
    "MAX_CONTENT_LENGTH": 1024 * 1024,  # bytes; a 1,000-instance batch is ~100 KB
    "LOAD_MODELS": True,
    "RELOAD_SYNC_SECONDS": 1.0,  # how often a worker looks for another worker's reload
    "LOAD_RETRY_SECONDS": 10.0,  # how often a worker without models retries loading them
}

#: Environment variable -> config key (all optional).
ENV_KEYS: dict[str, str] = {
    "OUTPUT_DIR": "OUTPUT_DIR",
    "ADMIN_TOKEN": "ADMIN_TOKEN",
    "MAX_CONTENT_LENGTH": "MAX_CONTENT_LENGTH",
}

#: Optional modules (issue 5, dashboard) that plug in with ``init_app(app)`` when they exist.
EXTENSIONS: tuple[str, ...] = ("service.logs", "service.metrics", "service.store", "service.dashboard")


def _env_config() -> dict[str, Any]:
    config: dict[str, Any] = {}
    for env, key in ENV_KEYS.items():
        value = os.environ.get(env)
        if value:
            config[key] = int(value) if key == "MAX_CONTENT_LENGTH" else value
    return config


def _init_extensions(app: Flask) -> None:
    """Call ``init_app(app)`` on each optional module in :data:`EXTENSIONS` that exists."""
    for name in EXTENSIONS:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).init_app(app)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    from MLPipeline.config import output_dir
    from service import api, errors
    from service.json_provider import OrjsonProvider
    from service.registry import Registry, settle_heap

    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config.from_mapping(DEFAULTS)
    app.config.from_mapping(_env_config())
    if config:
        app.config.from_mapping(config)
    app.config["OUTPUT_DIR"] = str(app.config["OUTPUT_DIR"] or output_dir())
    app.json.sort_keys = False  # keep fields in the documented order
    app.json.compact = True

    errors.init_app(app)
    reg = Registry(
        app.config["OUTPUT_DIR"],
        sync_seconds=float(app.config["RELOAD_SYNC_SECONDS"]),
        retry_seconds=float(app.config["LOAD_RETRY_SECONDS"]),
    )
    app.extensions[api.REGISTRY_KEY] = reg
    app.extensions.setdefault(api.READINESS_KEY, [])
    if app.config["LOAD_MODELS"]:
        reg.start()
    app.register_blueprint(api.create_blueprint(api.create_openapi(app)))
    _init_extensions(app)
    if reg.current is not None:
        settle_heap()  # again: the extensions imported and built more after the models loaded
    return app
