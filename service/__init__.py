"""The web layer. ``create_app(config=None)`` builds a Flask app; nothing heavy happens on import.

Reading the factory tells the whole app: the extensions (one JSON error shape, the model registry,
request ids and the access log, Prometheus metrics, the prediction log) and the blueprints (the API,
the prediction log's routes, the dashboard, the kept runs, the API explorer), each registered here and
nowhere else.

Configuration comes from the environment (see :data:`ENV_KEYS`) and then from ``config`` (a
mapping), which wins. Models are loaded when the app is created — in each gunicorn worker, since
``preload_app`` is off — unless ``LOAD_MODELS`` is false.
"""

from __future__ import annotations

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


def _env_config() -> dict[str, Any]:
    config: dict[str, Any] = {}
    for env, key in ENV_KEYS.items():
        value = os.environ.get(env)
        if value:
            config[key] = int(value) if key == "MAX_CONTENT_LENGTH" else value
    return config


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    from MLPipeline.config import output_dir
    from service import api, dashboard, docs, errors, logs, metrics, models, records, store
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
    tree = api.create_openapi(app)
    app.register_blueprint(api.create_blueprint(tree))
    app.register_blueprint(docs.bp)  # GET /docs: Swagger UI over /openapi.json
    logs.init_app(app)
    metrics.init_app(app)
    store.init_app(app)
    app.register_blueprint(records.create_blueprint(tree))
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(models.bp)
    if reg.current is not None:
        settle_heap()  # again: the extensions imported and built more after the models loaded
    return app
