"""Schema migrations (Alembic, service/migrations): upgraded at start-up by every worker, one at a time."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from service.store.tables import MYSQL_BACKENDS

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
MIGRATION_LOCK_KEY = 7_238_451_002  # arbitrary, fixed pg_advisory_xact_lock key for this schema
#: MySQL's GET_LOCK names are server-wide; the database's hash is appended (64 characters at most).
MYSQL_MIGRATION_LOCK = "callcenter-gp-migrate-"
MYSQL_MIGRATION_WAIT_S = 600  # a start-up waits this long for another worker's migration


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
    if engine.dialect.name in MYSQL_BACKENDS:
        with _mysql_migration_lock(engine) as conn, conn.begin():
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


@contextlib.contextmanager
def _mysql_migration_lock(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection holding this database's migration lock, its statement limit lifted.

    Lock waits stay bounded: a migration that cannot get a table in time fails, and the next
    request retries it, rather than queueing every request behind its metadata lock. GET_LOCK
    belongs to the session, not to a transaction (MySQL commits around DDL anyway), so the lock is
    released explicitly, and the connection is then discarded rather than pooled: no request
    inherits the lifted limit.
    """
    with engine.connect() as conn:
        try:
            name = sa.literal_column(f"CONCAT('{MYSQL_MIGRATION_LOCK}', MD5(DATABASE()))")
            got = conn.execute(sa.select(sa.func.get_lock(name, MYSQL_MIGRATION_WAIT_S))).scalar()
            if got != 1:
                raise TimeoutError(f"no turn to migrate the prediction log within {MYSQL_MIGRATION_WAIT_S} s")
            limit = "max_statement_time" if engine.dialect.is_mariadb else "max_execution_time"
            conn.exec_driver_sql(f"SET SESSION {limit} = 0")  # a migration may be slow
            conn.commit()  # end the autobegun transaction, so the caller can begin its own
            yield conn
            conn.execute(sa.select(sa.func.release_lock(name)))
        finally:
            conn.invalidate()  # closes the session, which also frees the lock after a failure


def migrate(engine: sa.Engine) -> None:
    """Upgrade the schema to the newest Alembic revision (a no-op when already there)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with _migration_connection(engine) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


