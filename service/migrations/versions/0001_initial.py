"""Prediction log and actuals tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

A frozen copy of the schema as it was at this revision: later changes go in new revisions, never
here, and never by importing the live tables from service.store.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


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
        sa.Column("lower_80", sa.Float),
        sa.Column("upper_80", sa.Float),
        sa.Column("lower_95", sa.Float),
        sa.Column("upper_95", sa.Float),
    )
    op.create_index("ix_prediction_log_created", "prediction_log", ["created_at", "id"])
    op.create_index("ix_prediction_log_domain_month", "prediction_log", ["domain", "month"])
    op.create_table(
        "actuals",
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("domain", sa.String(32), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("actuals")
    op.drop_index("ix_prediction_log_domain_month", table_name="prediction_log")
    op.drop_index("ix_prediction_log_created", table_name="prediction_log")
    op.drop_table("prediction_log")
