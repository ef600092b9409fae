"""Prediction log and actuals tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

A frozen copy of the schema as it was at this revision: later changes go in new revisions, never
here, and never by importing the live tables from service.store.

The MySQL/MariaDB variants (DOUBLE, DATETIME(6), InnoDB utf8mb4_bin tables) were added when that
backend was: they change no SQLite or PostgreSQL DDL, and no MySQL database predates them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL = ("mysql", "mariadb")
_MYSQL_TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def _float() -> sa.Float:
    return sa.Float().with_variant(mysql.DOUBLE(asdecimal=False), *_MYSQL)


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), *_MYSQL)


def upgrade() -> None:
    op.create_table(
        "prediction_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("domain", sa.String(32), nullable=False),
        sa.Column("month", sa.Date, nullable=False),
        sa.Column("phone_lines", _float()),
        sa.Column("channels", _float()),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("mean", _float(), nullable=False),
        sa.Column("std", _float(), nullable=False),
        sa.Column("lower_80", _float()),
        sa.Column("upper_80", _float()),
        sa.Column("lower_95", _float()),
        sa.Column("upper_95", _float()),
        **_MYSQL_TABLE,
    )
    op.create_index("ix_prediction_log_created", "prediction_log", ["created_at", "id"])
    op.create_index("ix_prediction_log_domain_month", "prediction_log", ["domain", "month"])
    op.create_table(
        "actuals",
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("domain", sa.String(32), primary_key=True),
        sa.Column("value", _float(), nullable=False),
        sa.Column("updated_at", _timestamp(), nullable=False),
        **_MYSQL_TABLE,
    )


def downgrade() -> None:
    op.drop_table("actuals")
    op.drop_index("ix_prediction_log_domain_month", table_name="prediction_log")
    op.drop_index("ix_prediction_log_created", table_name="prediction_log")
    op.drop_table("prediction_log")
