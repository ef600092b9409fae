"""The prediction log on SQLite and on the real PostgreSQL (TEST_DATABASE_URL) and MySQL/MariaDB
(TEST_MYSQL_URL) servers.

The server tests skip without their URL, except under CI=true where they fail: CI must exercise
the real servers. Each works in its own PostgreSQL schema or MySQL database, dropped afterwards
(the fixtures are in conftest.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service import store
from service.store import PredictionLog, PredictionLogUnavailable

UTC = dt.UTC


@pytest.fixture
def log(db_url):
    prediction_log = PredictionLog(db_url)
    prediction_log.ensure_schema()
    yield prediction_log
    prediction_log.dispose()


REGRESSORS = ("phone_lines", "channels")


def prediction(domain="Healthcare", month="2021-03", mean=100.0, std=10.0, version="v1", **extra):
    row = {
        "month": month,
        "domain": domain,
        "kind": "level",
        "mean": mean,
        "std": std,
        "lower_80": mean - 12.8,
        "upper_80": mean + 12.8,
        "lower_95": mean - 19.6,
        "upper_95": mean + 19.6,
        "phone_lines": 4.0,
        "channels": 2.0,
        "model_version": version,
    }
    row.update(extra)
    return row


def count_rows(log: PredictionLog, table=store.prediction_log) -> int:
    with log.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def alembic_to(engine: sa.Engine, revision: str, direction: str = "upgrade") -> None:
    """Move ``engine``'s schema to ``revision`` (Alembic's upgrade or downgrade)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(store.MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, direction)(cfg, revision)


class Clock:
    """Stands in for store.utcnow so tests control created_at."""

    def __init__(self, start: dt.datetime):
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch):
    fake = Clock(dt.datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    monkeypatch.setattr(store.predictions, "utcnow", fake)
    return fake


# --------------------------------------------------------------------------- configuration


def test_plain_postgres_urls_use_psycopg3():
    assert store.normalise_url("postgres://u:p@h:5432/db").startswith("postgresql+psycopg://u:p@h:5432/db")
    assert store.normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store.normalise_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store.normalise_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_plain_mysql_urls_use_pymysql():
    assert store.normalise_url("mysql://root@127.0.0.1:3306/test") == "mysql+pymysql://root@127.0.0.1:3306/test"
    assert store.normalise_url("mariadb://u:p@h/db") == "mariadb+pymysql://u:p@h/db"
    assert store.normalise_url("mysql+mysqldb://u@h/db") == "mysql+mysqldb://u@h/db"  # a chosen driver stays


def test_default_location_is_var_beside_the_models_or_prediction_db_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("PREDICTION_DB_DIR", raising=False)
    assert (
        store.database_url(model_dir=tmp_path / "Output")
        == f"sqlite:///{tmp_path / 'var' / 'predictions.db'}"
    )
    monkeypatch.setenv("PREDICTION_DB_DIR", str(tmp_path / "db"))
    assert store.database_url() == f"sqlite:///{tmp_path / 'db' / 'predictions.db'}"
    monkeypatch.setenv("DATABASE_URL", "postgres://someone@db.example/prod")
    assert store.database_url() == "postgresql+psycopg://someone@db.example/prod"


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    log = PredictionLog(store.database_url(db_dir=tmp_path))
    log.ensure_schema()
    with log.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == store.SQLITE_BUSY_TIMEOUT_S * 1000


def test_postgresql_statements_time_out_and_url_options_are_kept(pg_schema_url):
    engine = store.create_engine(pg_schema_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "10s"
        assert conn.exec_driver_sql("SHOW search_path").scalar().startswith("t_")  # from the URL
    engine.dispose()


def mysql_variables(engine: sa.Engine, *names: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(zip(names, conn.exec_driver_sql(f"SELECT {', '.join('@@' + n for n in names)}").one(),
                        strict=True))


def test_mysql_sessions_have_limits_strict_mode_and_utf8mb4(mysql_database_url):
    engine = store.create_engine(mysql_database_url)
    try:
        mariadb = "mariadb" in mysql_variables(engine, "version")["version"].lower()
        limit = "max_statement_time" if mariadb else "max_execution_time"
        found = mysql_variables(engine, limit, "lock_wait_timeout", "innodb_lock_wait_timeout", "sql_mode",
                                "character_set_connection")
        assert float(found[limit]) == (10 if mariadb else 10_000)
        assert found["lock_wait_timeout"] == found["innodb_lock_wait_timeout"] == 10
        assert "STRICT_ALL_TABLES" in found["sql_mode"].split(",")
        assert found["character_set_connection"] == "utf8mb4"
    finally:
        engine.dispose()


def test_mysql_tables_keep_microseconds_doubles_and_case(mysql_database_url):
    engine = store.create_engine(mysql_database_url)
    store.migrate(engine)
    database = sa.engine.make_url(mysql_database_url).database
    with engine.connect() as conn:
        tables = dict(conn.execute(sa.text(
            "SELECT table_name, CONCAT(engine, ' ', table_collation) FROM information_schema.tables "
            "WHERE table_schema = :db AND table_name IN ('prediction_log', 'actuals')"), {"db": database}).all())
        columns = dict(conn.execute(sa.text(
            "SELECT CONCAT(table_name, '.', column_name), column_type FROM information_schema.columns "
            "WHERE table_schema = :db"), {"db": database}).all())
    engine.dispose()
    assert tables == {"prediction_log": "InnoDB utf8mb4_bin", "actuals": "InnoDB utf8mb4_bin"}
    assert columns["prediction_log.created_at"] == columns["actuals.updated_at"] == "datetime(6)"
    assert {columns[f"prediction_log.{name}"] for name in ("mean", "std", "lower_95")} == {"double"}
    assert columns["prediction_log.regressors"] == "text"
    assert columns["actuals.value"] == "double"


def test_mysql_migration_lock_is_freed_and_no_pooled_connection_keeps_the_lifted_limit(mysql_database_url):
    engine = store.create_engine(mysql_database_url)
    try:
        store.migrate(engine)
        mariadb = engine.dialect.is_mariadb
        limit = "max_statement_time" if mariadb else "max_execution_time"
        with engine.connect() as conn:
            lock = f"CONCAT('{store.MYSQL_MIGRATION_LOCK}', MD5(DATABASE()))"
            assert conn.exec_driver_sql(f"SELECT IS_FREE_LOCK({lock})").scalar() == 1
        assert engine.pool.checkedin() >= 1  # the check above went back to the pool...
        for _ in range(engine.pool.checkedin() + 1):  # ...and no pooled session has the limit lifted
            assert float(mysql_variables(engine, limit)[limit]) > 0
    finally:
        engine.dispose()


def test_the_servers_refuse_a_value_too_long_instead_of_truncating_it(server_db_url):
    log = PredictionLog(server_db_url)
    try:
        log.ensure_schema()
        too_long = "x" * (store.DOMAIN_LENGTH + 1)
        with pytest.raises(PredictionLogUnavailable):
            log.record("req", "/predict", [prediction(domain=too_long)])
        with pytest.raises(PredictionLogUnavailable):
            log.upsert_actuals([{"month": "2021-01", "domain": too_long, "value": 1.0}])
        assert count_rows(log) == 0 and count_rows(log, store.actuals) == 0
    finally:
        log.dispose()


# --------------------------------------------------------------------------- schema


def test_schema_is_created_twice_without_error_and_matches_the_tables(db_url):
    engine = store.create_engine(db_url)
    store.migrate(engine)
    store.migrate(engine)  # second run: already at head, nothing to do
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0004"
        diffs = compare_metadata(MigrationContext.configure(conn), store.metadata)
    engine.dispose()
    # The hand-written migration and the live table definitions agree.
    assert [d for d in diffs if d[0] != "remove_table"] == []


def test_a_log_made_at_the_first_revision_upgrades_keeping_its_rows(db_url):
    engine = store.create_engine(db_url)
    alembic_to(engine, "0001")  # the schema as the first release made it
    log = PredictionLog(db_url)
    try:
        assert "ix_prediction_log_domain_month" in {i["name"] for i in sa.inspect(engine).get_indexes("prediction_log")}
        # the tables as the first revision had them (store's tables are the newest revision's)
        old_log = sa.table("prediction_log", *(sa.column(name) for name in (
            "request_id", "created_at", "endpoint", "domain", "month", "model_version", "kind", "mean", "std",
            "lower_95", "upper_95")))  # fmt: skip
        old_actuals = sa.table("actuals", *(sa.column(name) for name in ("month", "domain", "value", "updated_at")))
        with engine.begin() as conn:
            conn.execute(old_log.insert(), [{
                "request_id": "old", "created_at": store.utcnow(), "endpoint": "/predict", "domain": "Banking",
                "month": dt.date(2021, 1, 1), "model_version": "v0", "kind": "level", "mean": 1.0, "std": 0.1,
                "lower_95": 0.5, "upper_95": 1.5,
            }])  # fmt: skip
            conn.execute(old_actuals.insert(), [{"month": dt.date(2021, 1, 1), "domain": "Banking", "value": 1.2,
                                                 "updated_at": store.utcnow()}])
        log.record("new", "/predict", [prediction()])  # migrates to head first
        assert count_rows(log) == 2
        inspector = sa.inspect(engine)
        assert "ix_prediction_log_domain_month" not in {i["name"] for i in inspector.get_indexes("prediction_log")}
        # the old rows are monthly rows of their months: listed, filtered and joined as before
        old, = log.predictions(domain="Banking", month_from="2021-01", month_to="2021-01")[0]
        assert (old["request_id"], old["month"]) == ("old", "2021-01") and "period" not in old
        assert log.actuals() == [{"month": "2021-01", "domain": "Banking", "value": 1.2,
                                  "updated_at": log.actuals()[0]["updated_at"]}]
        banking = next(d for d in log.accuracy()["domains"] if d["domain"] == "Banking")
        assert banking["all_versions"]["count"] == 1
        assert banking["all_versions"]["mae"] == pytest.approx(0.2)
    finally:
        log.dispose()
        engine.dispose()


def test_concurrent_start_ups_migrate_once(db_url):
    errors: list[BaseException] = []

    def start_worker():
        engine = store.create_engine(db_url)
        try:
            store.migrate(engine)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=start_worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = store.create_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    engine.dispose()


# --------------------------------------------------------------------------- writes


def test_record_writes_one_row_per_prediction(log, clock):
    rows = [prediction(domain=d) for d in ("Healthcare", "Telecom", "Banking")]
    log.record("req-1", "/predict", rows)
    clock.tick()
    log.record("req-2", "/forecast", [prediction(month="2021-04-30", mean=7.5, std=0.5)], REGRESSORS)
    assert count_rows(log) == 4

    page, cursor = log.predictions(limit=10)
    assert cursor is None
    newest = page[0]
    assert newest["request_id"] == "req-2"
    assert newest["endpoint"] == "/forecast"
    assert newest["month"] == "2021-04"  # a full date is stored as its month
    assert newest["created_at"] == "2026-01-01T12:00:01.000000Z"
    assert (newest["mean"], newest["std"], newest["lower_95"], newest["upper_95"]) == (
        7.5,
        0.5,
        7.5 - 19.6,
        7.5 + 19.6,
    )
    assert (newest["regressors"], newest["model_version"]) == ({"phone_lines": 4.0, "channels": 2.0}, "v1")
    assert sorted(r["domain"] for r in page[1:]) == ["Banking", "Healthcare", "Telecom"]
    assert all(r["regressors"] == {} for r in page[1:])  # recorded without regressor names
    assert {r["request_id"] for r in page[1:]} == {"req-1"}


def test_missing_interval_levels_are_stored_as_null(log):
    row = prediction()
    for name in ("lower_80", "upper_80"):
        del row[name]
    log.record("req", "/predict", [row])
    (stored,), _ = log.predictions()
    assert stored["lower_80"] is None and stored["upper_80"] is None
    assert stored["lower_95"] == pytest.approx(80.4)


def test_the_generic_insert_stores_what_the_fast_one_stores(log, monkeypatch):
    """Drivers without positional markers take the Core insert; the stored rows are the same."""
    rows = [prediction(month="2021-03", phone_lines=None), prediction(domain="Banking", month="2021-04")]
    log.record("fast", "/predict", rows, REGRESSORS)
    monkeypatch.setattr(store.predictions, "_insert_plan", lambda dialect: None)
    log.record("generic", "/predict", rows, REGRESSORS)
    stored, _ = log.predictions()
    by_request = {rid: [{k: v for k, v in r.items() if k not in ("id", "request_id", "created_at")}
                        for r in stored if r["request_id"] == rid] for rid in ("fast", "generic")}
    assert len(by_request["fast"]) == 2 and by_request["fast"] == by_request["generic"]
    assert sorted(r["regressors"]["phone_lines"] or 0 for r in by_request["fast"]) == [0, 4.0]


def test_an_empty_request_writes_nothing(log):
    log.record("req", "/predict", [])
    assert count_rows(log) == 0


def test_sqlite_checkpoints_happen_off_the_request_path(tmp_path, monkeypatch):
    """Writers only checkpoint past the safety limit; the log's own thread moves the WAL into the
    database file soon after writes (the file grows without any further request)."""
    monkeypatch.setattr(store.predictions, "CHECKPOINT_EVERY_S", 0.05)
    log = PredictionLog(store.database_url(db_dir=tmp_path))
    try:
        log.ensure_schema()
        with log.engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
        assert pages == store.SAFETY_CHECKPOINT_PAGES
        database = tmp_path / store.DB_FILENAME
        before = database.stat().st_size
        log.record(
            "req", "/predict", [prediction(month=f"20{10 + i // 12}-{i % 12 + 1:02d}") for i in range(600)]
        )
        deadline = time.monotonic() + 10
        while database.stat().st_size == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert database.stat().st_size > before, "the write-ahead log was never checkpointed"
        assert count_rows(log) == 600
    finally:
        log.dispose()


def test_a_checkpoint_leaves_the_log_fully_copied_when_requests_write_beside_it(tmp_path, monkeypatch):
    """Under steady writes the pass beside the writers never copies the whole log (they append behind
    it), so SQLite never started it again and the request that took it to the safety limit copied it
    all itself. The checkpoint finishes under the write gate: what was appended meanwhile is copied,
    and the next write starts the log again."""
    monkeypatch.setattr(store.predictions, "CHECKPOINT_EVERY_S", 3600)  # only the checkpoints called here
    monkeypatch.setattr(store.predictions, "RESTART_FRAMES", 1)  # a log of a few frames counts as long
    log = PredictionLog(store.database_url(db_dir=tmp_path))
    batch = [prediction(month=f"20{10 + i // 12}-{i % 12 + 1:02d}") for i in range(100)]
    try:
        log.record("first", "/predict", batch)
        gate, beside = log._writer, []

        @contextlib.contextmanager
        def a_request_writes_first():
            if not beside:  # a request's write lands between the pass and the gate
                beside.append(True)
                log.record("beside", "/predict", batch)
            with gate():
                yield

        monkeypatch.setattr(log, "_writer", a_request_writes_first)
        frames, copied = log.checkpoint()
        assert beside, "a checkpoint that never takes the write gate cannot copy what writers append"
        assert frames == copied > 0
        monkeypatch.setattr(log, "_writer", gate)
        log.record("after", "/predict", batch[:1])
        frames_after, _ = log.checkpoint()
        assert 0 < frames_after < frames, "the log did not start again after a complete checkpoint"
        assert count_rows(log) == 201
    finally:
        log.dispose()


def test_a_short_log_is_checkpointed_without_the_write_gate(tmp_path, monkeypatch):
    """The gated pass syncs to disk while writers wait: a log under RESTART_FRAMES does without it."""
    monkeypatch.setattr(store.predictions, "CHECKPOINT_EVERY_S", 3600)
    log = PredictionLog(store.database_url(db_dir=tmp_path))
    try:
        log.record("req", "/predict", [prediction()])
        gated = []
        monkeypatch.setattr(log, "_writer", lambda: gated.append(True) or contextlib.nullcontext())
        frames, copied = log.checkpoint()
        assert 0 < frames < store.predictions.RESTART_FRAMES and copied == frames and not gated
    finally:
        log.dispose()


def test_a_forked_child_writes_although_a_parent_thread_held_the_gate(tmp_path):
    """A fork while the checkpoint thread holds the gate (or the engine lock) leaves the child its own."""
    log = PredictionLog(store.database_url(db_dir=tmp_path))
    try:
        log.ensure_schema()
        with log._gate, log._lock:  # as a parent thread would hold them at the moment of the fork
            pid = os.fork()
            if pid == 0:  # the child: no thread will ever release the parent's locks
                signal.alarm(20)  # a child stuck on one ends (killed) instead of hanging the test
                try:
                    log.record("child", "/predict", [prediction()])
                    os._exit(0)
                except BaseException:
                    os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert count_rows(log) == 1
    finally:
        log.dispose()


# --------------------------------------------------------------------------- reads


@pytest.fixture
def filled(log, clock):
    """12 requests, one a second: months 2021-01..2021-12, Healthcare and Banking each."""
    for i in range(12):
        month = f"2021-{i + 1:02d}"
        log.record(f"req-{i}", "/predict", [prediction("Healthcare", month), prediction("Banking", month)])
        clock.tick()
    return log


def test_filters_select_domain_month_range_and_created_since(filled):
    rows, _ = filled.predictions(domain="Banking", limit=1000)
    assert len(rows) == 12 and {r["domain"] for r in rows} == {"Banking"}

    rows, _ = filled.predictions(month_from="2021-03", month_to="2021-05", limit=1000)
    assert sorted({r["month"] for r in rows}) == ["2021-03", "2021-04", "2021-05"]
    assert len(rows) == 6

    since = dt.datetime(2026, 1, 1, 12, 0, 9, tzinfo=UTC)  # requests 9, 10, 11
    rows, _ = filled.predictions(created_since=since, domain="Healthcare", limit=1000)
    assert [r["request_id"] for r in rows] == ["req-11", "req-10", "req-9"]

    naive_since = dt.datetime(2026, 1, 1, 12, 0, 11)  # no zone means UTC
    rows, _ = filled.predictions(created_since=naive_since, limit=1000)
    assert {r["request_id"] for r in rows} == {"req-11"}


def test_pages_walk_every_row_once_newest_first(filled):
    everything, end = filled.predictions(limit=1000)
    assert end is None and len(everything) == 24
    stamps = [r["created_at"] for r in everything]
    assert stamps == sorted(stamps, reverse=True)

    walked, cursor, pages = [], None, 0
    while True:
        page, cursor = filled.predictions(limit=5, cursor=cursor)
        walked += page
        pages += 1
        if cursor is None:
            break
    assert pages == 5  # 5 + 5 + 5 + 5 + 4
    assert [r["id"] for r in walked] == [r["id"] for r in everything]


def test_pagination_composes_with_filters(filled):
    first, cursor = filled.predictions(domain="Healthcare", month_from="2021-06", limit=4)
    second, end = filled.predictions(domain="Healthcare", month_from="2021-06", limit=4, cursor=cursor)
    assert end is None
    assert [r["month"] for r in first + second] == [f"2021-{m:02d}" for m in range(12, 5, -1)]


def test_a_cursor_it_did_not_make_is_refused(log):
    for bad in ("nonsense", "W10", store.encode_cursor(dt.datetime.now(UTC), 1)[:-3] + "!!!"):
        with pytest.raises(ValueError, match="cursor"):
            log.predictions(cursor=bad)
    with pytest.raises(ValueError, match="limit"):
        log.predictions(limit=1001)


# --------------------------------------------------------------------------- actuals & accuracy


def test_domains_keep_their_case_and_any_unicode(log, clock):
    names = ["Sales", "sales", "Support \N{TELEPHONE RECEIVER}", "Ops \N{BLACK TELEPHONE}\U0001F4DE"]
    log.record("req", "/predict", [prediction(domain=name) for name in names])
    log.upsert_actuals([{"month": "2021-03", "domain": name, "value": float(i)} for i, name in enumerate(names)])
    rows, _ = log.predictions(limit=10)
    assert sorted(r["domain"] for r in rows) == sorted(names)
    assert {a["domain"]: a["value"] for a in log.actuals()} == {name: float(i) for i, name in enumerate(names)}
    assert [r["request_id"] for r in log.predictions(domain="sales")[0]] == ["req"]


def test_timestamps_keep_their_microseconds(log, clock):
    clock.now = clock.now.replace(microsecond=123_456)
    log.record("a", "/predict", [prediction()])
    clock.tick(0.000_001)
    log.record("b", "/predict", [prediction()])
    first, cursor = log.predictions(limit=1)
    assert first[0]["request_id"] == "b" and first[0]["created_at"] == "2026-01-01T12:00:00.123457Z"
    second, _ = log.predictions(limit=1, cursor=cursor)  # the cursor tells the two apart
    assert second[0]["request_id"] == "a" and second[0]["created_at"] == "2026-01-01T12:00:00.123456Z"


def test_floats_keep_double_precision(log):
    mean = 123_456.789_012_345_6
    log.record("req", "/predict", [prediction(mean=mean, std=1 / 3)])
    (row,), _ = log.predictions()
    assert row["mean"] == mean and row["std"] == 1 / 3  # exact: no single-precision column


def test_actuals_are_upserted_per_month_and_domain(log):
    assert log.upsert_actuals([{"month": "2021-01", "domain": "Healthcare", "value": 10.0}]) == 1
    log.upsert_actuals(
        [
            {"month": "2021-01-31", "domain": "Healthcare", "value": 12.0},  # same key: replaced
            {"month": "2021-01", "domain": "Banking", "value": 5.0},
            {"month": "2021-02", "domain": "Banking", "value": 6.0},
            {"month": "2021-02", "domain": "Banking", "value": 7.0},  # last in a batch wins
        ]
    )
    assert count_rows(log, store.actuals) == 3
    stored = {(a["domain"], a["month"]): a["value"] for a in log.actuals()}
    assert stored == {
        ("Healthcare", "2021-01"): 12.0,
        ("Banking", "2021-01"): 5.0,
        ("Banking", "2021-02"): 7.0,
    }


def test_accuracy_equals_a_hand_computation(log, clock):
    logged = [
        # (version, domain, month, mean, lower_95, upper_95)
        ("v1", "Healthcare", "2021-01", 100.0, 90.0, 110.0),
        ("v1", "Healthcare", "2021-02", 200.0, 150.0, 190.0),
        ("v1", "Healthcare", "2021-03", 300.0, 250.0, 350.0),  # no actual: not counted
        ("v1", "Banking", "2021-01", 50.0, 40.0, 60.0),
        ("v2", "Healthcare", "2021-01", 104.0, 100.0, 120.0),
        ("v2", "Banking", "2021-01", 58.0, 55.0, 65.0),
        ("v2", "Banking", "2021-02", 10.0, -5.0, 5.0),  # actual 0: no MAPE term
    ]
    for i, (version, domain, month, mean, lo, hi) in enumerate(logged):
        log.record(
            f"r{i}", "/predict", [prediction(domain, month, mean, version=version, lower_95=lo, upper_95=hi)]
        )
        clock.tick()
    actual = {("Healthcare", "2021-01"): 95.0, ("Healthcare", "2021-02"): 200.0, ("Banking", "2021-01"): 60.0}
    actual[("Banking", "2021-02")] = 0.0
    log.upsert_actuals([{"domain": d, "month": m, "value": v} for (d, m), v in actual.items()])

    def by_hand(version=None):
        figures = {}
        for domain in ("Banking", "Healthcare"):
            matched = [
                (mean, lo, hi, actual[(d, m)])
                for v, d, m, mean, lo, hi in logged
                if d == domain and (d, m) in actual and version in (None, v)
            ]
            errors = [abs(a - mean) for mean, _, _, a in matched]
            relative = [100 * abs(a - mean) / abs(a) for mean, _, _, a in matched if a != 0]
            figures[domain] = {
                "count": len(matched),
                "mae": sum(errors) / len(errors),
                "mape": sum(relative) / len(relative) if relative else None,
                "coverage_95": sum(lo <= a <= hi for _, lo, hi, a in matched) / len(matched),
            }
        return figures

    result = log.accuracy()
    assert result["latest_model_version"] == "v2"
    assert [d["domain"] for d in result["domains"]] == ["Banking", "Healthcare"]
    every, latest = by_hand(), by_hand("v2")
    # Spot-check the hand computation itself: Healthcare over all versions.
    assert every["Healthcare"] == {
        "count": 3,
        "mae": pytest.approx(14 / 3),
        "mape": pytest.approx(100 * (5 / 95 + 9 / 95) / 3),
        "coverage_95": 1 / 3,
    }
    for entry in result["domains"]:
        for got, want in (
            (entry["all_versions"], every[entry["domain"]]),
            (entry["latest_version"], latest[entry["domain"]]),
        ):
            assert got["count"] == want["count"]
            for key in ("mae", "mape", "coverage_95"):
                assert got[key] == pytest.approx(want[key]), (entry["domain"], key)


def test_accuracy_for_one_domain_and_with_nothing_logged(log):
    result = log.accuracy("Telecom")
    assert result == {
        "latest_model_version": None,
        "domains": [
            {
                "domain": "Telecom",
                "all_versions": {"count": 0, "mae": None, "mape": None, "coverage_95": None},
                "latest_version": {"count": 0, "mae": None, "mape": None, "coverage_95": None},
            }
        ],
    }


def test_accuracy_before_any_actual_names_the_latest_version_and_counts_nothing(log):
    log.record("r", "/predict", [prediction(domain="Telecom", version="v7")])
    empty = {"count": 0, "mae": None, "mape": None, "coverage_95": None}
    assert log.accuracy() == {"latest_model_version": "v7", "domains": []}
    assert log.accuracy("Telecom")["domains"] == [{"domain": "Telecom", "all_versions": empty, "latest_version": empty}]
    log.upsert_actuals([{"month": "2021-03", "domain": "Telecom", "value": 100.0}])
    assert log.accuracy("Telecom")["domains"][0]["all_versions"]["count"] == 1  # the first actual is scored


# --------------------------------------------------------------------------- failure


def write_failures() -> float:
    from prometheus_client import REGISTRY

    from service import metrics

    metrics.count_predictions([])  # make sure the metrics exist
    return REGISTRY.get_sample_value("callcenter_prediction_log_write_failures_total") or 0.0


@pytest.mark.skipif(bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")), reason="in-process registry needed")
def test_an_unreachable_database_raises_unavailable_counts_it_and_fails_ping():
    log = PredictionLog("postgresql://postgres@127.0.0.1:9/nowhere")  # nothing listens on port 9
    before = write_failures()
    with pytest.raises(
        PredictionLogUnavailable, match=r"prediction log write failed \(OperationalError\)"
    ) as raised:
        log.record("req", "/predict", [prediction()])
    assert write_failures() == before + 1
    ok, reason = log.ping()
    assert not ok and "prediction log check failed" in reason
    for public in (reason, str(raised.value)):  # what clients see names no host, port or database
        assert "127.0.0.1" not in public and "nowhere" not in public


def test_the_log_recovers_once_the_database_is_back(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the database directory should be")
    log = PredictionLog(store.database_url(db_dir=blocker / "var"))
    try:
        ok, reason = log.ping()
        assert not ok and "NotADirectoryError" in reason
        with pytest.raises(PredictionLogUnavailable):
            log.record("req", "/predict", [prediction()])
        blocker.unlink()  # the "database" comes back: schema and writes follow without a restart
        assert log.ping() == (True, "ok")
        log.record("req", "/predict", [prediction()])
        assert count_rows(log) == 1
    finally:
        log.dispose()


def test_a_forked_child_gets_its_own_engine(tmp_path):
    log = PredictionLog(store.database_url(db_dir=tmp_path))
    log.ensure_schema()
    parent_engine = log.engine
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's pool
        try:
            ok = log.engine is not parent_engine
            log.record("child", "/predict", [prediction()])
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert count_rows(log) == 1
    log.dispose()


def test_sqlite_writers_take_turns_through_the_gate_beside_the_database(tmp_path):
    import fcntl

    url = store.database_url(db_dir=tmp_path)
    log = PredictionLog(url)
    log.ensure_schema()
    gate = sa.engine.make_url(url).database + ".write-lock"
    done = threading.Event()

    def write():
        log.record("gated", "/predict", [prediction()])
        done.set()

    try:
        with open(gate, "a") as held:  # another worker's turn
            fcntl.flock(held, fcntl.LOCK_EX)
            writer = threading.Thread(target=write)
            writer.start()
            assert not done.wait(0.5)  # waits for the turn instead of writing beside it
            assert count_rows(log) == 0
        writer.join(10)
        assert done.is_set() and count_rows(log) == 1
        # many threads of two "workers" (two handles on one file): every row lands
        other = PredictionLog(url)
        threads = [threading.Thread(target=h.record, args=(f"r{i}", "/predict", [prediction()] * 50))
                   for i, h in enumerate([log, other] * 4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert count_rows(log) == 1 + 8 * 50
        other.dispose()
    finally:
        log.dispose()


def test_series_ids_of_any_characters_and_length_are_stored_exactly(log):
    ids = ["Zürich – Süd", "../x", "a/b", 'quote "q"', "客服中心", "x" * store.DOMAIN_LENGTH, "Travel", "TRAVEL"]
    log.record("ids", "/predict", [prediction(domain=sid) for sid in ids], REGRESSORS)
    log.upsert_actuals([{"month": "2021-03", "domain": sid, "value": 1.0} for sid in ids])
    stored, _ = log.predictions(limit=100)
    assert sorted(r["domain"] for r in stored) == sorted(ids)
    assert sorted(a["domain"] for a in log.actuals()) == sorted(ids)
    assert {d["domain"] for d in log.accuracy()["domains"]} == set(ids)


# --------------------------------------------------------------------------- other frequencies


def hourly(period: str, domain="queue 1", mean=10.0, version="h1") -> dict:
    row = prediction(domain=domain, mean=mean, version=version)
    del row["month"]
    return {**row, "period": period}


def test_hourly_rows_are_logged_by_the_hour_and_shown_with_period(log, clock):
    log.record("h", "/predict", [hourly("2024-04-01T09:00:00Z"), hourly("2024-04-01T10:00:00+01:00")],
               frequency="hourly")
    log.record("m", "/predict", [prediction(domain="queue 1", month="2024-04")])
    page, _ = log.predictions(domain="queue 1", limit=10)
    by_id = {r["request_id"]: r for r in page if r["request_id"] == "m"}
    assert by_id["m"]["month"] == "2024-04" and "period" not in by_id["m"]
    hours = [r for r in page if r["request_id"] == "h"]
    assert sorted(r["period"] for r in hours) == ["2024-04-01T09:00:00Z"] * 2  # 10:00+01:00 is 09:00 UTC
    assert all("month" not in r for r in hours)
    # periods are instants: a bound at 09:00 keeps both hours and the monthly row's 2024-04-01T00:00
    picked, _ = log.predictions(period_from=dt.datetime(2024, 4, 1, 9), period_to=dt.datetime(2024, 4, 1, 9))
    assert [r["request_id"] for r in picked] == ["h", "h"]
    assert len(log.predictions(month_from="2024-04", month_to="2024-04")[0]) == 3
    assert log.predictions(month_from="2024-05")[0] == [] and log.predictions(month_to="2024-03")[0] == []


def test_an_hourly_actual_at_midnight_on_the_first_is_not_the_months(log):
    log.record("m", "/predict", [prediction(domain="q", month="2024-04", mean=100.0)])
    log.record("h", "/predict", [hourly("2024-04-01T00:00:00Z", domain="q", mean=10.0)], frequency="hourly")
    assert log.upsert_actuals([{"month": "2024-04", "domain": "q", "value": 110.0}]) == 1
    assert log.upsert_actuals([{"period": "2024-04-01T00:00:00Z", "domain": "q", "value": 13.0}], "hourly") == 1
    assert [(a["month"], a["value"]) for a in log.actuals()] == [("2024-04", 110.0)]
    assert [(a["period"], a["value"]) for a in log.actuals("hourly")] == [("2024-04-01T00:00:00Z", 13.0)]
    (q,) = log.accuracy("q")["domains"]
    # each prediction against the actual of its own frequency: |110 - 100| and |13 - 10|
    assert q["all_versions"]["count"] == 2 and q["all_versions"]["mae"] == pytest.approx(6.5)


def test_the_periods_revision_downgrades_keeping_the_monthly_rows_and_upgrades_again(db_url):
    log = PredictionLog(db_url)
    log.ensure_schema()
    log.record("m", "/predict", [prediction(domain="q", month="2024-04")])
    log.record("h", "/predict", [hourly("2024-04-01T05:00:00Z", domain="q")], frequency="hourly")
    log.upsert_actuals([{"month": "2024-04", "domain": "q", "value": 90.0}])
    log.upsert_actuals([{"period": "2024-04-01T05:00:00Z", "domain": "q", "value": 9.0}], "hourly")
    log.dispose()
    engine = store.create_engine(db_url)
    try:
        alembic_to(engine, "0003", "downgrade")
        with engine.connect() as conn:
            months = conn.execute(sa.text("SELECT request_id, month FROM prediction_log")).all()
            actual = conn.execute(sa.text("SELECT month, value FROM actuals")).all()
        assert [(rid, str(month)[:10]) for rid, month in months] == [("m", "2024-04-01")]
        assert [(str(month)[:10], value) for month, value in actual] == [("2024-04-01", 90.0)]
        again = PredictionLog(db_url)
        again.ensure_schema()  # back to the newest revision
        (row,), _ = again.predictions()
        assert row["month"] == "2024-04" and again.actuals()[0]["value"] == 90.0
        assert again.accuracy("q")["domains"][0]["all_versions"]["count"] == 1
        again.dispose()
    finally:
        engine.dispose()


def test_the_periods_revision_takes_up_a_migration_stopped_halfway(db_url):
    """MySQL commits each DDL statement: a worker stopped inside revision 0004 leaves part of it done."""
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    engine = store.create_engine(db_url)
    try:
        alembic_to(engine, "0003")
        old_log = sa.table("prediction_log", *(sa.column(name) for name in (
            "request_id", "created_at", "endpoint", "domain", "month", "model_version", "kind", "mean", "std")))
        old_actuals = sa.table("actuals", *(sa.column(name) for name in ("month", "domain", "value", "updated_at")))
        with engine.begin() as conn:
            conn.execute(old_log.insert(), [{
                "request_id": "old", "created_at": store.utcnow(), "endpoint": "predict", "domain": "q",
                "month": dt.date(2021, 1, 1), "model_version": "v0", "kind": "level", "mean": 1.0, "std": 0.1}])
            conn.execute(old_actuals.insert(), [{"month": dt.date(2021, 1, 1), "domain": "q", "value": 2.0,
                                                 "updated_at": store.utcnow()}])
            ops = Operations(MigrationContext.configure(conn))
            ops.add_column("prediction_log", sa.Column("period", sa.DateTime()))  # the first step, done
            ops.create_table("actuals_0004", sa.Column("period", sa.DateTime(), primary_key=True),
                             sa.Column("domain", sa.String(200), primary_key=True))  # a copy begun
        log = PredictionLog(db_url)
        log.ensure_schema()
        (row,), _ = log.predictions()
        assert (row["request_id"], row["month"]) == ("old", "2021-01")
        assert [(a["month"], a["value"]) for a in log.actuals()] == [("2021-01", 2.0)]
        assert log.accuracy("q")["domains"][0]["all_versions"]["mae"] == pytest.approx(1.0)
        assert "actuals_0004" not in sa.inspect(engine).get_table_names()
        log.dispose()
    finally:
        engine.dispose()


def test_the_migrate_command_brings_a_log_to_the_newest_revision_and_says_so(tmp_path):
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = store.create_engine(url)
    alembic_to(engine, "0003")
    run = subprocess.run([sys.executable, "-m", "service.store", "migrate", "--url", url], capture_output=True,
                         text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"migrate: {url} is at revision 0004"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0004"
    engine.dispose()
    bad = subprocess.run([sys.executable, "-m", "service.store", "migrate", "--url",
                          "postgresql://nobody:secret@127.0.0.1:1/none"], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert "secret" not in bad.stderr and "OperationalError" in bad.stderr
