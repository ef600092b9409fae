"""The prediction log and the actuals table (SQLAlchemy Core; SQLite by default, PostgreSQL by URL).

Every prediction the service returns is written here before the response leaves: one transaction
per request, all of the request's rows in one executemany. When the write fails the request fails
too (503 ``prediction_log_unavailable``), so no prediction is ever served unlogged.

Where the data lives:
- ``DATABASE_URL`` set: that database. ``postgres://`` and ``postgresql://`` are rewritten to the
  psycopg 3 driver (``postgresql+psycopg://``).
- otherwise SQLite in ``$PREDICTION_DB_DIR/predictions.db``, by default ``var/`` beside the
  model directory (``<OUTPUT_DIR>/../var``). WAL mode + busy timeout make it safe for several
  gunicorn workers on one host; each worker checkpoints the WAL in a background thread (see
  CHECKPOINT_EVERY_S), not in the requests.

The schema is versioned with Alembic (``service/migrations``) and upgraded at start-up by every
worker; a lock (PostgreSQL advisory lock, a file lock beside the SQLite file) makes concurrent
starts take turns, and an up-to-date schema is a no-op.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import fcntl
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from MLPipeline.config import output_dir
from MLPipeline.months import format_month, parse_month
from service import metrics

log = logging.getLogger(__name__)

EXTENSION_KEY = "prediction_log"
DB_FILENAME = "predictions.db"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 10  # well under gunicorn's worker timeout: a stuck lock becomes a 503
PG_CONNECT_TIMEOUT_S = 3  # an unreachable server fails the request quickly instead of hanging it
PG_STATEMENT_TIMEOUT_MS = 10_000  # per statement, for requests; migrations lift it
MIGRATION_LOCK_KEY = 7_238_451_002  # arbitrary, fixed pg_advisory_xact_lock key for this schema
INTERVAL_COLUMNS = ("lower_80", "upper_80", "lower_95", "upper_95")
MAX_PAGE = 1000
#: SQLite: a background thread per worker moves the write-ahead log into the database file this
#: often (when something was written), so no request waits for a checkpoint and its fsync.
CHECKPOINT_EVERY_S = 1.0
#: ...and a writer still checkpoints if the log ever reaches this many pages (~40 MB) without one.
SAFETY_CHECKPOINT_PAGES = 10_000

metadata = sa.MetaData()
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_row_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

prediction_log = sa.Table(
    "prediction_log",
    metadata,
    sa.Column("id", _row_id, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("endpoint", sa.String(32), nullable=False),
    sa.Column("domain", sa.String(32), nullable=False),
    sa.Column("month", sa.Date, nullable=False),
    sa.Column("phone_lines", sa.Float),
    sa.Column("channels", sa.Float),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("mean", sa.Float, nullable=False),
    sa.Column("std", sa.Float, nullable=False),
    *(sa.Column(name, sa.Float) for name in INTERVAL_COLUMNS),
    sa.Index("ix_prediction_log_created", "created_at", "id"),
    # No (domain, month) index: it multiplied the pages each write touches (migration 0002).
)

actuals = sa.Table(
    "actuals",
    metadata,
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("domain", sa.String(32), primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


class PredictionLogUnavailable(RuntimeError):
    """The prediction log could not be written or read; the request must not succeed."""


# --- where the database is -------------------------------------------------------------------


def normalise_url(url: str) -> str:
    """Route the plain PostgreSQL URLs people write to the psycopg 3 driver."""
    parsed = sa.engine.make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
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


def create_engine(url: str) -> sa.Engine:
    """An engine with the settings the log needs on each backend."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() != "postgresql":
        return sa.create_engine(parsed, pool_pre_ping=True)
    # A stalled server turns into an error (503) long before gunicorn's worker timeout; the
    # URL's own libpq options (e.g. a search_path) are kept, since connect_args replace them.
    own = parsed.query.get("options")
    options = [own] if isinstance(own, str) else list(own or ())
    options.append(f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS}")
    # pre-ping: a connection dropped by a database restart is replaced, not used and failed.
    return sa.create_engine(
        parsed,
        pool_pre_ping=True,
        connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S, "options": " ".join(options)},
    )


# --- schema migrations -----------------------------------------------------------------------


@contextlib.contextmanager
def _migration_connection(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection inside a transaction that no other process migrating the same DB holds too."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            # Released at commit; a second worker waits here, then finds the schema at head.
            conn.execute(sa.text("SET LOCAL statement_timeout = 0"))  # a migration may be slow
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            yield conn
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        with engine.begin() as conn:
            yield conn
        return
    with open(f"{database}.migrate-lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file closes
        with engine.begin() as conn:
            yield conn


def migrate(engine: sa.Engine) -> None:
    """Upgrade the schema to the newest Alembic revision (a no-op when already there)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with _migration_connection(engine) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


# --- helpers for rows and cursors ------------------------------------------------------------


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC; naive values (SQLite hands them back that way) are taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def isoformat_utc(value: dt.datetime) -> str:
    return as_utc(value).isoformat(timespec="microseconds").replace("+00:00", "Z")


@functools.lru_cache(maxsize=4096)
def _month_date(value: Any) -> dt.date:
    # cached: a batch repeats the same few months, and parse_month costs microseconds each
    return parse_month(value).date()


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def encode_cursor(created_at: dt.datetime, row_id: int) -> str:
    """Opaque keyset cursor: the (created_at, id) of the last row on the page."""
    raw = json.dumps([isoformat_utc(created_at), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    """Inverse of :func:`encode_cursor`; ValueError for anything it did not produce."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, row_id = json.loads(raw)
        if not isinstance(row_id, int) or isinstance(row_id, bool):
            raise TypeError("row id")
        return as_utc(dt.datetime.fromisoformat(stamp)), row_id
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError("cursor is not one this service returned") from exc


def _reason(exc: BaseException) -> str:
    """A one-line, credential-free description of a database error."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else 'no detail'}"


def _stats(count: int, mae: Any, mape: Any, coverage: Any) -> dict[str, Any]:
    def num(value: Any) -> float | None:
        return None if value is None else float(value)

    return {"count": int(count), "mae": num(mae), "mape": num(mape), "coverage_95": num(coverage)}


# --- writing a request's rows ----------------------------------------------------------------

#: The prediction log's columns in the order the fast insert binds them (the id is generated).
_WRITTEN = (
    "request_id", "created_at", "endpoint", "domain", "month", "phone_lines", "channels",
    "model_version", "kind", "mean", "std", *INTERVAL_COLUMNS,
)  # fmt: skip
_FLOATS = frozenset(("phone_lines", "channels", "mean", "std", *INTERVAL_COLUMNS))
_MARKERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def _log_values(request_id: str, created_at: dt.datetime, endpoint: str, rows) -> list[dict[str, Any]]:
    """The rows as dicts for a Core insert (the fallback for drivers without positional markers)."""
    plain = _InsertPlan("", None, None)  # same conversions, no dialect processing
    return [dict(zip(_WRITTEN, values, strict=True))
            for values in plain.parameters(request_id, created_at, endpoint, rows)]


class _InsertPlan:
    """One request's rows as parameter tuples for a plain executemany of one INSERT.

    SQLAlchemy's per-row parameter processing cost more than the database write itself for a
    500-row request, so the statement is rendered once per dialect and the only conversions the
    driver needs (the dialect's own, for the timestamp and the month) run once per request and
    once per distinct month; floats are converted here, as the Core insert's processors would.
    """

    def __init__(self, sql: str, created: Any, month: Any) -> None:
        self.sql = sql
        self._created = created or (lambda value: value)
        self._month = month or (lambda value: value)

    def parameters(self, request_id: str, created_at: dt.datetime, endpoint: str, rows) -> list[tuple]:
        created = self._created(created_at)
        months: dict[Any, Any] = {}
        out = []
        for row in rows:
            month = row["month"]
            stored = months.get(month)
            if stored is None:
                stored = months[month] = self._month(_month_date(month))
            get = row.get
            out.append((
                request_id, created, endpoint, row["domain"], stored,
                _float_or_none(get("phone_lines")), _float_or_none(get("channels")),
                str(row["model_version"]), row["kind"], float(row["mean"]), float(row["std"]),
                *[_float_or_none(get(name)) for name in INTERVAL_COLUMNS],
            ))  # fmt: skip
        return out


@functools.lru_cache(maxsize=8)
def _insert_plan(dialect: sa.Dialect) -> _InsertPlan | None:
    """The fast INSERT for ``dialect``, or None when its driver or types need the generic path."""
    marker = _MARKERS.get(dialect.paramstyle)
    processors = {}
    for name in _WRITTEN:
        column = prediction_log.c[name]
        processor = column.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None and name not in _FLOATS:
            processors[name] = processor
    if marker is None or set(processors) - {"created_at", "month"}:
        return None
    quote = dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {quote(prediction_log.name)} ({', '.join(quote(name) for name in _WRITTEN)}) "
        f"VALUES ({', '.join([marker] * len(_WRITTEN))})"
    )
    return _InsertPlan(sql, processors.get("created_at"), processors.get("month"))


# --- the log ---------------------------------------------------------------------------------


class PredictionLog:
    """The service's handle on the database: record, query, actuals, accuracy, ping.

    The engine is created lazily and again after a fork, so a gunicorn master that imported the
    app never shares connections with its workers.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: sa.Engine | None = None
        self._pid: int | None = None
        self._schema_ready = False
        self._lock = threading.Lock()
        self._checkpointer: threading.Thread | None = None
        self._written = threading.Event()
        self._closed = False
        self._gate = threading.Lock()  # see _writer
        self._gate_file = None
        self._gate_pid: int | None = None

    @functools.cached_property
    def backend(self) -> str:
        return sa.engine.make_url(self.url).get_backend_name()

    @property
    def engine(self) -> sa.Engine:
        with self._lock:
            if self._engine is None or self._pid != os.getpid():
                if self._engine is not None:
                    self._engine.dispose(close=False)  # the parent's connections stay the parent's
                self._engine = create_engine(self.url)
                self._pid = os.getpid()
            return self._engine

    def ensure_schema(self) -> None:
        if not self._schema_ready:
            migrate(self.engine)
            self._schema_ready = True

    @contextlib.contextmanager
    def _failures(self, action: str) -> Iterator[None]:
        """Database and file-system errors inside become PredictionLogUnavailable (logged)."""
        try:
            yield
        except (SQLAlchemyError, OSError) as exc:
            log.error("prediction log %s failed: %s", action, _reason(exc))
            # Clients (and /ready) get the error class only: host names and SQL stay in the log.
            kind = type(getattr(exc, "orig", None) or exc).__name__
            raise PredictionLogUnavailable(
                f"prediction log {action} failed ({kind}); the server log has the details"
            ) from exc

    @contextlib.contextmanager
    def _transaction(self, action: str, *, write: bool = False) -> Iterator[sa.Connection]:
        with self._failures(action):
            self.ensure_schema()
            with self._writer() if write else contextlib.nullcontext(), self.engine.begin() as conn:
                yield conn

    @contextlib.contextmanager
    def _writer(self) -> Iterator[None]:
        """SQLite: one writer at a time across this host's workers, handed over at once.

        SQLite lets one transaction write; a writer that finds the database locked sleeps in
        SQLite's busy handler (1, 2, 5, 10, 15, 20, 25 ms ...) however soon the lock frees, which
        made a 500-row write wait ~100 ms under 8 concurrent batches. Queuing on a thread lock and
        an flock beside the database wakes the next writer as soon as the last one commits; the
        busy timeout still bounds the holder. Other backends lock rows themselves: no gate.
        """
        path = self._gate_path
        if path is None:
            yield
            return
        if not self._gate.acquire(timeout=SQLITE_BUSY_TIMEOUT_S):
            raise OSError(f"no turn to write the prediction log within {SQLITE_BUSY_TIMEOUT_S} s")
        try:
            if self._gate_file is None or self._gate_pid != os.getpid():
                self._gate_file = open(path, "a")  # noqa: SIM115 - kept open for the process
                self._gate_pid = os.getpid()
            fcntl.flock(self._gate_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._gate_file, fcntl.LOCK_UN)
        finally:
            self._gate.release()

    @functools.cached_property
    def _gate_path(self) -> str | None:
        url = sa.engine.make_url(self.url)
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return None
        return f"{url.database}.write-lock"

    def dispose(self) -> None:
        self._closed = True  # the checkpoint thread ends after its current sleep
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    # writes

    def record(self, request_id: str, endpoint: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Store one request's predictions in one transaction, or raise PredictionLogUnavailable."""
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return
        created_at = utcnow()
        try:
            with self._failures("write"):
                self.ensure_schema()
                # Built before taking the write turn, so a writer holds SQLite's lock only to write.
                plan = _insert_plan(self.engine.dialect)
                if plan is None:  # a driver without positional parameters: the generic statement
                    statement = prediction_log.insert()
                    values = _log_values(request_id, created_at, endpoint, rows)
                else:
                    statement, values = plan.sql, plan.parameters(request_id, created_at, endpoint, rows)
                with self._writer():
                    if plan is None:
                        with self.engine.begin() as conn:
                            conn.execute(statement, values)
                    else:
                        self._executemany(statement, values)
        except PredictionLogUnavailable:
            metrics.count_log_write_failure()
            raise
        metrics.count_predictions(rows)
        self._after_write()

    def _executemany(self, sql: str, values: list[tuple]) -> None:
        """One INSERT of many rows on a pooled DBAPI connection, committed before returning.

        For a one-month request SQLAlchemy's Connection and transaction objects cost as much as
        the write itself (0.13 -> 0.06 ms per 5-row write on SQLite); the pool still pre-pings,
        and a driver error is raised as SQLAlchemy's own wrapper of it.
        """
        engine = self.engine
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                cursor.executemany(sql, values)
            finally:
                cursor.close()
            raw.commit()
        except engine.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(sql, None, exc, engine.dialect.loaded_dbapi.Error) from exc
        finally:
            raw.close()  # back to the pool, which rolls back anything left uncommitted

    def _after_write(self) -> None:
        """Wake (or start, in this process) the SQLite checkpoint thread."""
        if self.backend != "sqlite":
            return
        self._written.set()
        self._closed = False
        thread = self._checkpointer
        if thread is None or not thread.is_alive():  # none yet, or a forked child's copy
            with self._lock:
                thread = self._checkpointer
                if thread is None or not thread.is_alive():
                    thread = threading.Thread(
                        target=self._checkpoint_loop, name="prediction-log-checkpoint", daemon=True
                    )
                    thread.start()
                    self._checkpointer = thread

    def _checkpoint_loop(self) -> None:
        """Move the WAL into the database file after writes, off the requests' path (PASSIVE: it
        never blocks a writer). A failure is logged; the next write tries again, and a writer
        checkpoints by itself past SAFETY_CHECKPOINT_PAGES."""
        while True:
            time.sleep(CHECKPOINT_EVERY_S)
            if self._closed:
                return
            if not self._written.is_set():
                continue
            self._written.clear()
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except (SQLAlchemyError, OSError) as exc:
                log.warning("prediction log checkpoint failed: %s", _reason(exc))

    def upsert_actuals(self, items: Iterable[Mapping[str, Any]]) -> int:
        """Insert or replace observed values per (month, domain); returns how many were stored."""
        now = utcnow()
        latest: dict[tuple[dt.date, str], dict[str, Any]] = {}
        for item in items:  # last one wins within a batch, as it would across batches
            month = _month_date(item["month"])
            latest[(month, item["domain"])] = {
                "month": month,
                "domain": item["domain"],
                "value": float(item["value"]),
                "updated_at": now,
            }
        if not latest:
            return 0
        insert = (pg_insert if self.backend == "postgresql" else sqlite_insert)(actuals)
        statement = insert.on_conflict_do_update(
            index_elements=[actuals.c.month, actuals.c.domain],
            set_={"value": insert.excluded.value, "updated_at": insert.excluded.updated_at},
        )
        with self._transaction("actuals write", write=True) as conn:
            conn.execute(statement, list(latest.values()))
        return len(latest)

    # reads

    def ping(self) -> tuple[bool, str]:
        """(True, "ok") when the log's table can be read; (False, reason) otherwise."""
        try:
            with self._transaction("check") as conn:
                conn.execute(sa.select(prediction_log.c.id).limit(1)).all()
        except PredictionLogUnavailable as exc:
            return False, str(exc)
        return True, "ok"

    def predictions(
        self,
        *,
        domain: str | None = None,
        month_from: Any = None,
        month_to: Any = None,
        created_since: dt.datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Logged predictions, newest first, and the cursor of the next page (None at the end)."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
        t = prediction_log.c
        query = sa.select(prediction_log)
        if domain is not None:
            query = query.where(t.domain == domain)
        if month_from is not None:
            query = query.where(t.month >= _month_date(month_from))
        if month_to is not None:
            query = query.where(t.month <= _month_date(month_to))
        if created_since is not None:
            query = query.where(t.created_at >= as_utc(created_since))
        if cursor is not None:
            stamp, row_id = decode_cursor(cursor)
            query = query.where(sa.or_(t.created_at < stamp, sa.and_(t.created_at == stamp, t.id < row_id)))
        query = query.order_by(t.created_at.desc(), t.id.desc()).limit(limit + 1)
        with self._transaction("read") as conn:
            found = conn.execute(query).mappings().all()
        page = [self._public_row(row) for row in found[:limit]]
        more = len(found) > limit
        last = found[limit - 1] if more else None
        return page, (encode_cursor(last["created_at"], last["id"]) if last else None)

    @staticmethod
    def _public_row(row: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(row)
        out["created_at"] = isoformat_utc(row["created_at"])
        out["month"] = format_month(row["month"])
        return out

    def actuals(self) -> list[dict[str, Any]]:
        """All stored actuals, by domain then month."""
        query = sa.select(actuals).order_by(actuals.c.domain, actuals.c.month)
        with self._transaction("read") as conn:
            found = conn.execute(query).mappings().all()
        return [
            {
                "month": format_month(r["month"]),
                "domain": r["domain"],
                "value": r["value"],
                "updated_at": isoformat_utc(r["updated_at"]),
            }
            for r in found
        ]

    def accuracy(self, domain: str | None = None) -> dict[str, Any]:
        """Logged predictions joined with actuals: per domain count, MAE, MAPE (%), 95% coverage.

        Every logged prediction of a month with an actual counts once (a month asked for often
        weighs more: this is the accuracy of what was served). MAPE skips zero actuals; coverage
        counts only rows that carry a 95% interval. Figures appear for all versions together and
        for the latest model version (the version of the newest logged prediction).
        """
        p, a = prediction_log.c, actuals.c
        error = sa.func.abs(a.value - p.mean)
        relative = sa.case((a.value != 0, 100.0 * error / sa.func.abs(a.value)), else_=None)
        covered = sa.case(
            (p.lower_95.is_(None), None),
            (sa.and_(a.value >= p.lower_95, a.value <= p.upper_95), 1.0),
            else_=0.0,
        )
        joined = prediction_log.join(actuals, sa.and_(a.month == p.month, a.domain == p.domain))
        base = (
            sa.select(
                p.domain,
                sa.func.count(),
                sa.func.avg(error),
                sa.func.avg(relative),
                sa.func.avg(covered),
            )
            .select_from(joined)
            .group_by(p.domain)
        )
        if domain is not None:
            base = base.where(p.domain == domain)
        newest = sa.select(p.model_version).order_by(p.created_at.desc(), p.id.desc()).limit(1)
        with self._transaction("read") as conn:
            latest = conn.execute(newest).scalar()
            overall = {row[0]: _stats(*row[1:]) for row in conn.execute(base)}
            current = (
                {row[0]: _stats(*row[1:]) for row in conn.execute(base.where(p.model_version == latest))}
                if latest is not None
                else {}
            )
        empty = _stats(0, None, None, None)
        names = sorted(set(overall) | ({domain} if domain else set()))
        return {
            "latest_model_version": latest,
            "domains": [
                {
                    "domain": name,
                    "all_versions": overall.get(name, empty),
                    "latest_version": current.get(name, empty),
                }
                for name in names
            ],
        }


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
        log.error("prediction log unavailable at start: %s", _reason(exc))
    app.extensions[EXTENSION_KEY] = store
    app.register_error_handler(PredictionLogUnavailable, _unavailable_response)

    def database_check() -> tuple[str, str | None]:
        ok, reason = store.ping()
        return "database", None if ok else reason

    app.extensions.setdefault("readiness_checks", []).append(database_check)  # read by GET /ready
    from service import records  # the blueprint reads through this store

    records.init_app(app)
    return store
