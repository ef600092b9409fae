"""The prediction log's tables (SQLAlchemy Core), the one definition migrations are checked against."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from MLPipeline.config import MAX_SERIES_ID_LENGTH

MYSQL_BACKENDS = frozenset(("mysql", "mariadb"))  # SQLAlchemy's names for the one server family
INTERVAL_COLUMNS = ("lower_80", "upper_80", "lower_95", "upper_95")
#: Longest series id both tables hold (the loader's limit); a change needs a migration (on MySQL the
#: actuals key must stay within InnoDB's 3072 bytes: about 760 utf8mb4 characters).
DOMAIN_LENGTH = MAX_SERIES_ID_LENGTH

metadata = sa.MetaData()
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_row_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# MySQL's FLOAT is single precision and its DATETIME drops the microseconds the keyset cursor pages
# by: DOUBLE and DATETIME(6) there. Elsewhere these are the plain types.
_float = sa.Float().with_variant(mysql.DOUBLE(asdecimal=False), *MYSQL_BACKENDS)
_timestamp = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), *MYSQL_BACKENDS)
#: A period's first instant, naive UTC (a month's is its first day at 00:00): periods are compared for
#: equality in the accuracy join, so no backend may shift them by a session time zone.
_period = sa.DateTime(timezone=False)
#: The model's frequency (MLPipeline.frequency.FREQUENCIES): says how a period is written on the wire,
#: and keeps an hourly queue's actual at 00:00 on the 1st apart from the same queue's monthly one.
FREQUENCY_LENGTH = 16
# InnoDB (transactional), 4-byte UTF-8, and binary comparison: "Sales" and "sales" stay two keys,
# as on SQLite and PostgreSQL (MySQL's default collation is case-insensitive).
_MYSQL_TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}

prediction_log = sa.Table(
    "prediction_log",
    metadata,
    sa.Column("id", _row_id, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("created_at", _timestamp, nullable=False),
    sa.Column("endpoint", sa.String(32), nullable=False),
    sa.Column("domain", sa.String(DOMAIN_LENGTH), nullable=False),
    sa.Column("period", _period, nullable=False),
    sa.Column("frequency", sa.String(FREQUENCY_LENGTH), nullable=False, server_default="monthly"),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("mean", _float, nullable=False),
    sa.Column("std", _float, nullable=False),
    *(sa.Column(name, _float) for name in INTERVAL_COLUMNS),
    # the request's regressor values as a JSON object: the regressors are the model's, not the schema's
    sa.Column("regressors", sa.Text),
    sa.Index("ix_prediction_log_created", "created_at", "id"),
    # No (domain, period) index: it multiplied the pages each write touches (migration 0002).
    **_MYSQL_TABLE,
)

actuals = sa.Table(
    "actuals",
    metadata,
    sa.Column("period", _period, primary_key=True),
    sa.Column("domain", sa.String(DOMAIN_LENGTH), primary_key=True),
    sa.Column("frequency", sa.String(FREQUENCY_LENGTH), primary_key=True, server_default="monthly"),
    sa.Column("value", _float, nullable=False),
    sa.Column("updated_at", _timestamp, nullable=False),
    **_MYSQL_TABLE,
)


