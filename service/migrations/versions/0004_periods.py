"""Periods of any frequency: ``month`` (a date) becomes ``period`` (a UTC timestamp) plus ``frequency``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

A weekly, daily, hourly or half-hourly model's predictions and actuals are logged like a monthly
one's: the period's first instant (naive UTC; a month's is its first day at 00:00) and the model's
frequency, which says how the period is written on the wire and keeps an hourly actual at 00:00 on
the 1st apart from the same series' monthly one. Rows stored before are monthly and keep their
months. The actuals table is copied into its new shape (its key changes); the log gains its columns
in place, so its ids and their sequence stay as they are.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SERIES_ID = 200
FREQUENCY = 16
_MYSQL_TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
_float = sa.Float().with_variant(mysql.DOUBLE(asdecimal=False), "mysql", "mariadb")
_timestamp = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _as_period(column: sa.ColumnElement) -> sa.ColumnElement:
    """A stored month (a date) as the timestamp of its first instant, in each backend's storage form."""
    if op.get_bind().dialect.name == "sqlite":
        # SQLAlchemy keeps SQLite timestamps as text in this one form; equal periods must be equal text
        return column + sa.literal(" 00:00:00.000000")
    return sa.cast(column, sa.DateTime())


def _as_month(column: sa.ColumnElement) -> sa.ColumnElement:
    if op.get_bind().dialect.name == "sqlite":
        return sa.func.substr(column, 1, 10)
    return sa.cast(column, sa.Date())


def _actuals_table(name: str, when: sa.Column) -> sa.Table:
    keys = [when, sa.Column("domain", sa.String(SERIES_ID), primary_key=True)]
    if when.name == "period":
        keys.append(sa.Column("frequency", sa.String(FREQUENCY), primary_key=True, server_default="monthly"))
    return sa.Table(name, sa.MetaData(), *keys, sa.Column("value", _float, nullable=False),
                    sa.Column("updated_at", _timestamp, nullable=False), **_MYSQL_TABLE)


def _copy_actuals(new: sa.Table, old_when: str, convert, where=None) -> None:
    """Replace ``actuals`` by ``new`` holding the same rows (``old_when`` converted)."""
    new.create(op.get_bind())
    old = sa.table("actuals", sa.column(old_when), sa.column("domain"), sa.column("value"), sa.column("updated_at"))
    select = sa.select(convert(old.c[old_when]), old.c.domain, old.c.value, old.c.updated_at)
    if where is not None:
        select = select.where(where(old))
    columns = [new.c[new.columns.keys()[0]], new.c.domain, new.c.value, new.c.updated_at]
    op.execute(new.insert().from_select(columns, select))
    op.drop_table("actuals")
    op.rename_table(new.name, "actuals")


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    """Each step checks what is already done: MySQL commits every DDL statement by itself, so a worker
    stopped halfway (gunicorn's boot timeout, a deploy) leaves a part done that the next start must
    take up rather than fail on (PostgreSQL and SQLite roll the whole revision back instead)."""
    columns = _columns("prediction_log")
    if "month" in columns:
        with op.batch_alter_table("prediction_log") as batch:
            if "period" not in columns:
                batch.add_column(sa.Column("period", sa.DateTime()))
            if "frequency" not in columns:
                batch.add_column(sa.Column("frequency", sa.String(FREQUENCY), nullable=False,
                                           server_default="monthly"))
        log = sa.table("prediction_log", sa.column("month"), sa.column("period"))
        op.execute(log.update().values(period=_as_period(log.c.month)))
        with op.batch_alter_table("prediction_log") as batch:
            batch.alter_column("period", existing_type=sa.DateTime(), nullable=False)
            batch.drop_column("month")
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if "actuals_0004" in tables:  # a copy that did not finish: the old table is still whole, or gone
        if "actuals" in tables:
            op.drop_table("actuals_0004")
        else:
            op.rename_table("actuals_0004", "actuals")
            return
    if "month" in _columns("actuals"):
        _copy_actuals(_actuals_table("actuals_0004", sa.Column("period", sa.DateTime(), primary_key=True)),
                      "month", _as_period)


def downgrade() -> None:
    """Back to months: rows of other frequencies cannot be written as months and are dropped."""
    op.execute(sa.text("DELETE FROM prediction_log WHERE frequency <> 'monthly'"))
    with op.batch_alter_table("prediction_log") as batch:
        batch.add_column(sa.Column("month", sa.Date()))
    log = sa.table("prediction_log", sa.column("month"), sa.column("period"))
    op.execute(log.update().values(month=_as_month(log.c.period)))
    with op.batch_alter_table("prediction_log") as batch:
        batch.alter_column("month", existing_type=sa.Date(), nullable=False)
        batch.drop_column("frequency")
        batch.drop_column("period")
    _copy_actuals(_actuals_table("actuals_0003", sa.Column("month", sa.Date(), primary_key=True)),
                  "period", _as_month, where=lambda old: sa.text("frequency = 'monthly'"))
