"""The prediction log and the actuals table (SQLAlchemy Core; SQLite by default, PostgreSQL or
MySQL/MariaDB by URL).

Every prediction the service returns is written here before the response leaves: one transaction
per request, all of the request's rows in one executemany. When the write fails the request fails
too (503 ``prediction_log_unavailable``), so no prediction is ever served unlogged.

Where the data lives:
- ``DATABASE_URL`` set: that database. ``postgres://`` and ``postgresql://`` are rewritten to the
  psycopg 3 driver (``postgresql+psycopg://``), ``mysql://`` and ``mariadb://`` to PyMySQL
  (``mysql+pymysql://``, ``mariadb+pymysql://``).
- otherwise SQLite in ``$PREDICTION_DB_DIR/predictions.db``, by default ``var/`` beside the
  model directory (``<OUTPUT_DIR>/../var``). WAL mode + busy timeout make it safe for several
  gunicorn workers on one host; each worker checkpoints the WAL in a background thread (see
  CHECKPOINT_EVERY_S), not in the requests.

Modules: ``tables`` (the tables), ``connection`` (URL and engine per backend), ``schema`` (Alembic
migrations), ``rows`` (timestamps, cursors, the fast INSERT), ``predictions`` (PredictionLog and SQLite's write
gate and checkpoints); this package wires the log into Flask.

The schema is versioned with Alembic (``service/migrations``) and upgraded at start-up by every
worker; a lock (PostgreSQL advisory lock, MySQL ``GET_LOCK``, a file lock beside the SQLite file)
makes concurrent starts take turns, and an up-to-date schema is a no-op.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from service.store.connection import (
    DB_FILENAME,
    SAFETY_CHECKPOINT_PAGES,
    SQLITE_BUSY_TIMEOUT_S,
    create_engine,
    database_url,
    default_db_dir,
    normalise_url,
)
from service.store.predictions import CHECKPOINT_EVERY_S, PredictionLog, PredictionLogUnavailable
from service.store.rows import CURSOR_PATTERN, MAX_CURSOR, MAX_PAGE, _reason, as_utc, encode_cursor, utcnow
from service.store.schema import MIGRATIONS_DIR, MYSQL_MIGRATION_LOCK, migrate
from service.store.tables import DOMAIN_LENGTH, MYSQL_BACKENDS, actuals, metadata, prediction_log

__all__ = [
    "CHECKPOINT_EVERY_S", "CURSOR_PATTERN", "DB_FILENAME", "DOMAIN_LENGTH", "EXTENSION_KEY", "MAX_CURSOR", "MAX_PAGE",
    "MIGRATIONS_DIR", "MYSQL_BACKENDS", "MYSQL_MIGRATION_LOCK", "SAFETY_CHECKPOINT_PAGES", "SQLITE_BUSY_TIMEOUT_S",
    "PredictionLog", "PredictionLogUnavailable", "actuals", "as_utc", "create_engine", "database_url",
    "default_db_dir", "encode_cursor", "init_app", "metadata", "migrate", "normalise_url", "prediction_log",
    "utcnow",
]  # fmt: skip

_log = logging.getLogger(__name__)

EXTENSION_KEY = "prediction_log"


# --- Flask wiring ----------------------------------------------------------------------------


def _unavailable_response(exc: PredictionLogUnavailable):
    from service.errors import error_response

    # 503, not 500: the request was fine, the log is not; clients may retry.
    return error_response(503, "prediction_log_unavailable", str(exc), None, {"Retry-After": "5"})


def init_app(app) -> PredictionLog:
    """Attach the prediction log to ``app`` (``app.extensions["prediction_log"]``).

    Reads ``DATABASE_URL`` / ``PREDICTION_DB_DIR`` / ``OUTPUT_DIR`` from app.config, then the
    environment. A database that is down at start does not stop the app: /ready reports it and
    every write retries the connection (and the migration) until it is back.
    """
    store = PredictionLog(
        database_url(
            app.config.get("DATABASE_URL"),
            app.config.get("PREDICTION_DB_DIR"),
            app.config.get("OUTPUT_DIR"),
        )
    )
    try:
        store.ensure_schema()
    except (SQLAlchemyError, OSError) as exc:
        _log.error("prediction log unavailable at start: %s", _reason(exc))
    app.extensions[EXTENSION_KEY] = store
    app.register_error_handler(PredictionLogUnavailable, _unavailable_response)

    def database_check() -> tuple[str, str | None]:
        ok, reason = store.ping()
        return "database", None if ok else reason

    app.extensions.setdefault("readiness_checks", []).append(database_check)  # read by GET /ready
    return store
