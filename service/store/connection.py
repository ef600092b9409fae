"""Where the prediction log lives: the URL (DATABASE_URL or the SQLite file) and an engine with the
settings each backend needs (timeouts, pragmas, session limits)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from MLPipeline.config import output_dir
from service.store.tables import MYSQL_BACKENDS

DB_FILENAME = "predictions.db"
SQLITE_BUSY_TIMEOUT_S = 10  # well under gunicorn's worker timeout: a stuck lock becomes a 503
CONNECT_TIMEOUT_S = 3  # an unreachable server fails the request quickly instead of hanging it
#: SQLite: a writer checkpoints the WAL by itself if the log ever reaches this many pages (~40 MB) without one (the
#: log's background thread normally does it, see service.store.log).
SAFETY_CHECKPOINT_PAGES = 10_000
STATEMENT_TIMEOUT_MS = 10_000  # per statement (and per lock wait on MySQL), for requests; migrations lift it


# --- where the database is -------------------------------------------------------------------


#: The drivers the image ships, for URLs that name none.
_DEFAULT_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


def normalise_url(url: str) -> str:
    """Route the plain PostgreSQL and MySQL URLs people write to psycopg 3 and PyMySQL."""
    parsed = sa.engine.make_url(url)
    if parsed.drivername in _DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=_DEFAULT_DRIVERS[parsed.drivername])
    return parsed.render_as_string(hide_password=False)


def default_db_dir(model_dir: str | os.PathLike | None = None) -> Path:
    """``$PREDICTION_DB_DIR``, else ``var/`` beside the model directory."""
    configured = os.environ.get("PREDICTION_DB_DIR")
    if configured:
        return Path(configured)
    return Path(model_dir or output_dir()).resolve().parent / "var"


def database_url(
    url: str | None = None,
    db_dir: str | os.PathLike | None = None,
    model_dir: str | os.PathLike | None = None,
) -> str:
    """The SQLAlchemy URL to use: explicit ``url``, ``$DATABASE_URL``, or the SQLite file."""
    url = url or os.environ.get("DATABASE_URL")
    if url:
        return normalise_url(url)
    directory = Path(db_dir) if db_dir else default_db_dir(model_dir)
    return f"sqlite:///{directory.resolve() / DB_FILENAME}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # busy_timeout first: switching to WAL needs a lock another worker may briefly hold.
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.execute("PRAGMA journal_mode = WAL")
    # NORMAL in WAL mode: a commit survives a process crash; no fsync per request.
    cursor.execute("PRAGMA synchronous = NORMAL")
    # Checkpoints run in PredictionLog's background thread; this is only the safety net.
    cursor.execute(f"PRAGMA wal_autocheckpoint = {SAFETY_CHECKPOINT_PAGES}")
    cursor.close()


def _mysql_session(dbapi_connection, _record) -> None:
    """Per-connection limits and modes: MySQL's own defaults wait a year for a lock and, on a
    server configured without strict mode, truncate an over-long value instead of failing."""
    if "mariadb" in dbapi_connection.get_server_info().lower():
        statement_limit = f"max_statement_time = {STATEMENT_TIMEOUT_MS / 1000}"  # seconds
    else:
        statement_limit = f"max_execution_time = {STATEMENT_TIMEOUT_MS}"  # ms; SELECTs only
    lock_wait_s = max(1, STATEMENT_TIMEOUT_MS // 1000)
    cursor = dbapi_connection.cursor()
    cursor.execute(
        f"SET SESSION {statement_limit}, lock_wait_timeout = {lock_wait_s}, "
        f"innodb_lock_wait_timeout = {lock_wait_s}, "
        "sql_mode = IF(@@sql_mode = '', 'STRICT_ALL_TABLES', CONCAT(@@sql_mode, ',STRICT_ALL_TABLES'))"
    )
    cursor.close()


def create_engine(url: str) -> sa.Engine:
    """An engine with the settings the log needs on each backend."""
    parsed = sa.engine.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend in MYSQL_BACKENDS:
        connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
        if "charset" not in parsed.query:
            connect_args["charset"] = "utf8mb4"  # any series name, not only the BMP
        engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
        sa.event.listen(engine, "connect", _mysql_session)
        return engine
    if backend != "postgresql":
        return sa.create_engine(parsed, pool_pre_ping=True)
    # A stalled server turns into an error (503) long before gunicorn's worker timeout; the
    # URL's own libpq options (e.g. a search_path) are kept, since connect_args replace them.
    own = parsed.query.get("options")
    options = [own] if isinstance(own, str) else list(own or ())
    options.append(f"-c statement_timeout={STATEMENT_TIMEOUT_MS}")
    # pre-ping: a connection dropped by a database restart is replaced, not used and failed.
    return sa.create_engine(
        parsed,
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "options": " ".join(options)},
    )


