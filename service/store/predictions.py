"""PredictionLog: the service's handle on the database (record, query, actuals, accuracy, ping), with
SQLite's one-writer-at-a-time gate and its background checkpoints."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from MLPipeline.calendars import period_field
from MLPipeline.frequency import format_period
from service import metrics
from service.store.connection import SQLITE_BUSY_TIMEOUT_S, create_engine
from service.store.rows import (
    MAX_PAGE,
    MONTHLY,
    _insert_plan,
    _log_values,
    _reason,
    _stats,
    as_utc,
    decode_cursor,
    encode_cursor,
    isoformat_utc,
    period_value,
    utcnow,
)
from service.store.schema import migrate
from service.store.tables import MYSQL_BACKENDS, actuals, prediction_log

log = logging.getLogger(__name__)

#: SQLite: a background thread per worker moves the write-ahead log into the database file this
#: often (when something was written), so no request waits for a checkpoint and its fsync. Often
#: enough that the log stays far below SAFETY_CHECKPOINT_PAGES at the highest write rate measured
#: (bench/scale.py's 100-queue cell; docs/benchmarks.md).
CHECKPOINT_EVERY_S = 0.2
#: SQLite: a checkpoint finishes under the write gate (so that the log starts again) once the log has
#: this many frames (4 KiB pages: 4 MiB), far below SAFETY_CHECKPOINT_PAGES.
RESTART_FRAMES = 1_000


def _flock_until(file, deadline: float) -> None:
    """An exclusive flock on ``file``, or OSError at ``deadline``.

    A blocking flock cannot time out: behind a writer stuck on a locked database, the other
    workers' writers queued for ever (past gunicorn's timeout, which restarts the worker). Polled
    instead, from 0.1 ms doubling to 2 ms between tries: the wait stays close to the hand-over.
    """
    pause = 0.0001
    while True:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise OSError(f"no turn to write the prediction log within {SQLITE_BUSY_TIMEOUT_S} s") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.002)


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return as_utc(value).replace(tzinfo=None)


class PredictionLogUnavailable(RuntimeError):
    """The prediction log could not be written or read; the request must not succeed."""


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
        me = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (log := me()) is not None and log._after_fork())

    def _after_fork(self) -> None:
        """In a forked child: locks that a thread of the parent held at the fork (the checkpoint
        thread takes the gate and the engine lock) would stay held for ever; the child has no threads."""
        self._lock, self._gate = threading.Lock(), threading.Lock()
        self._checkpointer, self._written = None, threading.Event()

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
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S  # one bound for both turns
        if not self._gate.acquire(timeout=SQLITE_BUSY_TIMEOUT_S):
            raise OSError(f"no turn to write the prediction log within {SQLITE_BUSY_TIMEOUT_S} s")
        try:
            if self._gate_file is None or self._gate_pid != os.getpid():
                self._gate_file = open(path, "a")  # noqa: SIM115 - kept open for the process
                self._gate_pid = os.getpid()
            _flock_until(self._gate_file, deadline)
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

    def record(self, request_id: str, endpoint: str, rows: Iterable[Mapping[str, Any]],
               regressors: tuple[str, ...] = (), frequency: str = MONTHLY) -> None:
        """Store one request's predictions in one transaction, or raise PredictionLogUnavailable.

        ``regressors`` names the row keys that hold regressor values (the served model's);
        ``frequency`` is the model's: its rows name their period ``month`` (monthly) or ``period``.
        """
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
                    values = _log_values(request_id, created_at, endpoint, rows, regressors, frequency)
                else:
                    statement = plan.sql
                    values = plan.parameters(request_id, created_at, endpoint, rows, regressors, frequency)
                with self._writer():
                    if plan is None:
                        with self.engine.begin() as conn:
                            conn.execute(statement, values)
                    else:
                        self._executemany(statement, values)
        except PredictionLogUnavailable:
            metrics.count_log_write_failure()
            raise
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
        """Checkpoint after writes, off the requests' path. A failure is logged; the next write
        tries again, and a writer checkpoints by itself past SAFETY_CHECKPOINT_PAGES."""
        while True:
            time.sleep(CHECKPOINT_EVERY_S)
            if self._closed:
                return
            if not self._written.is_set():
                continue
            self._written.clear()
            try:
                self.checkpoint()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("prediction log checkpoint failed: %s", _reason(exc))

    def checkpoint(self) -> tuple[int, int]:
        """SQLite: move the write-ahead log into the database file; returns (frames in the log, frames
        copied) of the last pass.

        SQLite starts the log again from its beginning only when a writer finds every frame copied.
        Under steady writes a pass beside the writers never leaves it so (they append behind it): the
        log grew to SAFETY_CHECKPOINT_PAGES, and the writer that crossed it copied all of it itself,
        with every other writer queued behind the gate. So the bulk is copied beside the
        writers (PASSIVE never blocks them), then what they appended meanwhile under the write gate,
        a few frames: the next writer starts the log again.
        """
        with self.engine.connect() as conn:
            _, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
            # Not on "all copied": a pass counts the frames there were when it began, so that does not
            # say no writer appended since. By the log's length instead: the gated pass syncs the
            # files to disk while every writer waits, so a short log is left for a calmer moment.
            if frames >= RESTART_FRAMES:
                with self._writer():
                    _, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return frames, copied

    def upsert_actuals(self, items: Iterable[Mapping[str, Any]], frequency: str = MONTHLY) -> int:
        """Insert or replace observed values per (period, domain) of ``frequency``; returns how many
        were stored. An item names its period ``month`` or ``period`` (a label or a datetime)."""
        now = utcnow()
        latest: dict[tuple[dt.datetime, str], dict[str, Any]] = {}
        for item in items:  # last one wins within a batch, as it would across batches
            period = period_value(item["period"] if "period" in item else item["month"], frequency)
            latest[(period, item["domain"])] = {
                "period": period,
                "domain": item["domain"],
                "frequency": frequency,
                "value": float(item["value"]),
                "updated_at": now,
            }
        if not latest:
            return 0
        if self.backend in MYSQL_BACKENDS:
            insert = mysql_insert(actuals)
            statement = insert.on_duplicate_key_update(
                value=insert.inserted.value, updated_at=insert.inserted.updated_at
            )
        else:
            insert = (pg_insert if self.backend == "postgresql" else sqlite_insert)(actuals)
            statement = insert.on_conflict_do_update(
                index_elements=[actuals.c.period, actuals.c.domain, actuals.c.frequency],
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
        period_from: dt.datetime | None = None,
        period_to: dt.datetime | None = None,
        created_since: dt.datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Logged predictions, newest first, and the cursor of the next page (None at the end).

        ``month_from``/``month_to`` take whole months (any period inside them); ``period_from``/
        ``period_to`` are instants (naive = UTC). All bounds are inclusive.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
        t = prediction_log.c
        query = sa.select(prediction_log)
        if domain is not None:
            query = query.where(t.domain == domain)
        if month_from is not None:
            query = query.where(t.period >= period_value(month_from))
        if month_to is not None:
            following = period_value(month_to) + dt.timedelta(days=32)
            query = query.where(t.period < following.replace(day=1))
        if period_from is not None:
            query = query.where(t.period >= _naive_utc(period_from))
        if period_to is not None:
            query = query.where(t.period <= _naive_utc(period_to))
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
        """A logged row as the API shows it: a monthly row exactly as before periods (``month``,
        YYYY-MM), another frequency's with ``period`` (ISO 8601 UTC) in its place."""
        out = {}
        for key, value in row.items():
            if key == "period":
                out[period_field(row["frequency"])] = format_period(row["frequency"], value)
            elif key != "frequency":
                out[key] = value
        out["created_at"] = isoformat_utc(row["created_at"])
        out["regressors"] = orjson.loads(row["regressors"]) if row["regressors"] else {}
        return out

    def actuals(self, frequency: str = MONTHLY) -> list[dict[str, Any]]:
        """The stored actuals of ``frequency``, by domain then period (named as the API names it)."""
        query = sa.select(actuals).where(actuals.c.frequency == frequency).order_by(actuals.c.domain, actuals.c.period)
        field = period_field(frequency)
        with self._transaction("read") as conn:
            found = conn.execute(query).mappings().all()
        return [
            {
                field: format_period(frequency, r["period"]),
                "domain": r["domain"],
                "value": r["value"],
                "updated_at": isoformat_utc(r["updated_at"]),
            }
            for r in found
        ]

    def accuracy(self, domain: str | None = None) -> dict[str, Any]:
        """Logged predictions joined with actuals: per domain count, MAE, MAPE (%), 95% coverage.

        Every logged prediction of a period with an actual counts once (a period asked for often
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
        joined = prediction_log.join(
            actuals, sa.and_(a.period == p.period, a.domain == p.domain, a.frequency == p.frequency))
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
            # The join reads the whole log (it has no (domain, period) index: that cost every write):
            # with no actual recorded yet, nothing can match, so it is not run.
            scored = conn.execute(sa.select(a.domain).limit(1)).first() is not None
            overall = {row[0]: _stats(*row[1:]) for row in conn.execute(base)} if scored else {}
            current = (
                {row[0]: _stats(*row[1:]) for row in conn.execute(base.where(p.model_version == latest))}
                if latest is not None and scored
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


