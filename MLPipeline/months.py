"""Month parsing and formatting: ``YYYY-MM`` on the wire, month-start timestamps inside."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd

_MONTH_RE = re.compile(r"^\s*(\d{4})-(\d{1,2})(?:-(\d{1,2}))?(?:[T ][0-9:.]+)?\s*$")


def parse_month(value) -> pd.Timestamp:
    """Return the month-start Timestamp for ``value``.

    Accepts ``"2021-03"``, ``"2021-03-31"`` (any valid day; normalised to the month),
    ``datetime``/``date``/``Timestamp``. Raises ValueError naming the bad value otherwise.
    """
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date) and not isinstance(value, bool):
        ts = pd.Timestamp(value)
        if pd.isna(ts):
            raise ValueError("month is missing")
        return ts.to_period("M").to_timestamp()
    if not isinstance(value, str):
        raise ValueError(f"month must be a 'YYYY-MM' string, got {type(value).__name__} {value!r}")
    match = _MONTH_RE.match(value)
    if not match:
        raise ValueError(f"month {value!r} is not of the form YYYY-MM or YYYY-MM-DD")
    year, month, day = int(match.group(1)), int(match.group(2)), match.group(3)
    try:
        date = dt.date(year, month, int(day) if day else 1)
    except ValueError as exc:
        raise ValueError(f"month {value!r} is not a valid date ({exc})") from None
    if not 1900 <= date.year <= 2200:
        raise ValueError(f"month {value!r} is outside the supported years 1900..2200")
    return pd.Timestamp(date.year, date.month, 1)


def format_month(ts) -> str:
    """``Timestamp('2021-03-01')`` -> ``'2021-03'``."""
    ts = pd.Timestamp(ts)
    return f"{ts.year:04d}-{ts.month:02d}"


def month_ordinal(ts) -> int:
    """Months since year 0: consecutive months differ by exactly 1."""
    ts = pd.Timestamp(ts)
    return ts.year * 12 + ts.month - 1


def to_month_start_index(index) -> pd.DatetimeIndex:
    """Normalise a DatetimeIndex of month-start or month-end dates to month starts (freq MS)."""
    idx = pd.DatetimeIndex(index)
    return pd.DatetimeIndex(idx.to_period("M").to_timestamp(), name=index.name)
