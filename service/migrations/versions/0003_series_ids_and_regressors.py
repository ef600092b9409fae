"""Series ids and regressors come from the data: wider id columns, regressors as one JSON column.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

A model's series are named by its data (up to 200 characters) and so are its regressors, so the
log can no longer have a column per regressor. ``regressors`` holds the request's values as a JSON
object (``{"phone_lines": 4.0, "channels": 2.0}``); rows logged before keep theirs, copied from the
two columns this revision drops.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SERIES_ID = 200


def upgrade() -> None:
    with op.batch_alter_table("prediction_log") as batch:
        batch.add_column(sa.Column("regressors", sa.Text))
        batch.alter_column("domain", type_=sa.String(SERIES_ID), existing_type=sa.String(32),
                           existing_nullable=False)
    log = sa.table("prediction_log", sa.column("regressors", sa.Text), sa.column("phone_lines", sa.Float),
                   sa.column("channels", sa.Float))
    old = sa.and_(log.c.phone_lines.is_not(None), log.c.channels.is_not(None))
    # JSON built in SQL (no rows through Python); numbers keep their float form, as json.dumps writes them
    text = sa.func.concat if op.get_bind().dialect.name == "mysql" else None
    parts = ['{"phone_lines": ', sa.cast(log.c.phone_lines, sa.String), ', "channels": ',
             sa.cast(log.c.channels, sa.String), "}"]
    joined = text(*parts) if text is not None else parts[0]
    if text is None:
        for part in parts[1:]:
            joined = joined + part
    op.execute(log.update().where(old).values(regressors=joined))
    with op.batch_alter_table("prediction_log") as batch:
        batch.drop_column("phone_lines")
        batch.drop_column("channels")
    with op.batch_alter_table("actuals") as batch:
        batch.alter_column("domain", type_=sa.String(SERIES_ID), existing_type=sa.String(32),
                           existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("actuals") as batch:
        batch.alter_column("domain", type_=sa.String(32), existing_type=sa.String(SERIES_ID))
    with op.batch_alter_table("prediction_log") as batch:
        batch.add_column(sa.Column("phone_lines", sa.Float))
        batch.add_column(sa.Column("channels", sa.Float))
        batch.drop_column("regressors")
        batch.alter_column("domain", type_=sa.String(32), existing_type=sa.String(SERIES_ID))
