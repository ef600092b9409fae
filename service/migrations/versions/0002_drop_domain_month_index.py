"""Drop the prediction log's (domain, month) index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Each logged request touches one entry of that index per (domain, month) it answers, spread over
the whole index: a 100-month batch for five domains rewrote ~500 index pages, so every commit
wrote ~650 KB to SQLite's write-ahead log instead of ~155 KB, and the log reached its checkpoint
size every ~20 batches, stalling the request that committed then (~100 ms). The readers do
without it: accuracy aggregates every logged prediction that has an actual (a scan either way,
probing the actuals' primary key), and the predictions listing walks the created_at index.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_prediction_log_domain_month", table_name="prediction_log")


def downgrade() -> None:
    op.create_index("ix_prediction_log_domain_month", "prediction_log", ["domain", "month"])
