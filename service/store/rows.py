"""The log's rows in and out: timestamps, periods, opaque cursors, and the one INSERT a request's rows go in."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
from collections.abc import Mapping
from typing import Any

import orjson
import pandas as pd
import sqlalchemy as sa

from MLPipeline.calendars import period_field
from MLPipeline.months import parse_month
from service.store.tables import INTERVAL_COLUMNS, prediction_log

MAX_PAGE = 1000


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


MONTHLY = "monthly"


@functools.lru_cache(maxsize=4096)
def period_value(value: Any, frequency: str = MONTHLY) -> dt.datetime:
    """A period as the log stores it: its first instant, naive UTC (a month: its first day, 00:00).

    ``value`` is what the API writes (``YYYY-MM``, an ISO 8601 timestamp) or a date/datetime; a
    month is any day of it. Cached: a batch repeats the same few periods, and parsing costs
    microseconds each.
    """
    if frequency == MONTHLY:
        return parse_month(value).to_pydatetime()
    stamp = pd.Timestamp(value)
    if stamp is pd.NaT:
        raise ValueError("period is missing")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


#: What a cursor looks like (base64url, unpadded) and how long one can be: a timestamp and an id
#: encode to ~70 characters.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
MAX_CURSOR = 128
#: Row ids are 64-bit signed on every backend; a cursor naming one outside them is not ours.
MAX_ROW_ID = 2**63 - 1


def encode_cursor(created_at: dt.datetime, row_id: int) -> str:
    """Opaque keyset cursor: the (created_at, id) of the last row on the page."""
    raw = json.dumps([isoformat_utc(created_at), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    """Inverse of :func:`encode_cursor`; ValueError for anything it did not produce."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, row_id = json.loads(raw)
        if not isinstance(row_id, int) or isinstance(row_id, bool) or not 0 < row_id <= MAX_ROW_ID:
            raise TypeError("row id")
        return as_utc(dt.datetime.fromisoformat(stamp)), row_id
    except (binascii.Error, ValueError, TypeError, OverflowError) as exc:  # Overflow: in UTC past 9999
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
    "request_id", "created_at", "endpoint", "domain", "period", "frequency",
    "model_version", "kind", "mean", "std", *INTERVAL_COLUMNS, "regressors",
)  # fmt: skip
_FLOATS = frozenset(("mean", "std", *INTERVAL_COLUMNS))
_TEXTS = frozenset(("regressors",))
_MARKERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def _log_values(request_id: str, created_at: dt.datetime, endpoint: str, rows,
                regressors: tuple[str, ...] = (), frequency: str = MONTHLY) -> list[dict[str, Any]]:
    """The rows as dicts for a Core insert (the fallback for drivers without positional markers)."""
    plain = _InsertPlan("", None, None)  # same conversions, no dialect processing
    return [dict(zip(_WRITTEN, values, strict=True))
            for values in plain.parameters(request_id, created_at, endpoint, rows, regressors, frequency)]


def regressor_json(row: Mapping[str, Any], regressors: tuple[str, ...]) -> str | None:
    """A row's regressor values as the log stores them (None when the model has no regressors)."""
    if not regressors:
        return None
    return orjson.dumps({name: _float_or_none(row.get(name)) for name in regressors}).decode()


class _InsertPlan:
    """One request's rows as parameter tuples for a plain executemany of one INSERT.

    SQLAlchemy's per-row parameter processing cost more than the database write itself for a
    500-row request, so the statement is rendered once per dialect and the only conversions the
    driver needs (the dialect's own, for the timestamp and the period) run once per request and
    once per distinct period; floats are converted here, as the Core insert's processors would.
    """

    def __init__(self, sql: str, created: Any, period: Any) -> None:
        self.sql = sql
        self._created = created or (lambda value: value)
        self._period = period or (lambda value: value)

    def parameters(self, request_id: str, created_at: dt.datetime, endpoint: str, rows,
                   regressors: tuple[str, ...] = (), frequency: str = MONTHLY) -> list[tuple]:
        created = self._created(created_at)
        field = period_field(frequency)
        periods: dict[Any, Any] = {}
        out = []
        for row in rows:
            label = row[field]
            stored = periods.get(label)
            if stored is None:
                stored = periods[label] = self._period(period_value(label, frequency))
            get = row.get
            out.append((
                request_id, created, endpoint, row["domain"], stored, frequency,
                str(row["model_version"]), row["kind"], float(row["mean"]), float(row["std"]),
                *[_float_or_none(get(name)) for name in INTERVAL_COLUMNS], regressor_json(row, regressors),
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
        if processor is not None and name not in _FLOATS | _TEXTS | {"frequency"}:
            processors[name] = processor
    if marker is None or set(processors) - {"created_at", "period"}:
        return None
    quote = dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {quote(prediction_log.name)} ({', '.join(quote(name) for name in _WRITTEN)}) "
        f"VALUES ({', '.join([marker] * len(_WRITTEN))})"
    )
    return _InsertPlan(sql, processors.get("created_at"), processors.get("period"))


