"""Month parsing and formatting: ``YYYY-MM`` on the wire, month-start timestamps inside."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

#: Years a month may fall in (wider ranges are typos, and pandas' timestamps end in 2262).
YEAR_RANGE = (1900, 2200)
_MONTH_RE = re.compile(r"^\s*(\d{4})-(\d{1,2})(?:-(\d{1,2}))?(?:[T ][0-9:.]+)?\s*$")


def parse_month(value) -> pd.Timestamp:
    """Return the month-start Timestamp for ``value``.

    Accepts ``"2021-03"``, ``"2021-03-31"`` (any valid day; normalised to the month),
    ``datetime``/``date``/``Timestamp``. Raises ValueError naming the bad value otherwise.
    """
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date) and not isinstance(value, bool):
        if value is pd.NaT:
            raise ValueError("month is missing")
        if not YEAR_RANGE[0] <= value.year <= YEAR_RANGE[1]:
            raise ValueError(f"month {value!s} is outside the supported years {YEAR_RANGE[0]}..{YEAR_RANGE[1]}")
        return pd.Timestamp(value.year, value.month, 1)
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
    if not YEAR_RANGE[0] <= date.year <= YEAR_RANGE[1]:
        raise ValueError(f"month {value!r} is outside the supported years {YEAR_RANGE[0]}..{YEAR_RANGE[1]}")
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


#: Month ordinal of 1970-01, where numpy's datetime64[M] counts from.
EPOCH_ORDINAL = 1970 * 12


def format_ordinal(ordinal: int) -> str:
    """Month ordinal -> ``'YYYY-MM'``."""
    ordinal = int(ordinal)
    return f"{ordinal // 12:04d}-{ordinal % 12 + 1:02d}"


def ordinal_index(ordinals) -> pd.DatetimeIndex:
    """Month-start DatetimeIndex (named 'month') for month ordinals."""
    starts = (np.asarray(ordinals, dtype=np.int64) - EPOCH_ORDINAL).astype("datetime64[M]").astype("datetime64[ns]")
    return pd.DatetimeIndex(starts, name="month")


def index_ordinals(index: pd.DatetimeIndex) -> np.ndarray:
    """Month ordinals of a naive DatetimeIndex, in one step."""
    return np.asarray(index).astype("datetime64[M]").astype(np.int64) + EPOCH_ORDINAL


@functools.lru_cache(maxsize=4096)
def _string_ordinal(value: str) -> int:
    # cached: requests repeat the same few month strings, and parsing one costs microseconds
    return month_ordinal(parse_month(value))


def ordinals_of(months) -> np.ndarray:
    """Months as models accept them (strings 'YYYY-MM', dates, a DatetimeIndex, or month ordinals) as
    int64 month ordinals, validated like :func:`parse_month`.

    An int array is taken as ordinals already; a naive DatetimeIndex (what the service and the pipeline
    pass) is converted in one step; anything else element by element.
    """
    if isinstance(months, np.ndarray) and months.dtype.kind == "i":
        return months.astype(np.int64, copy=False)
    if isinstance(months, pd.DatetimeIndex) and months.tz is None:
        if not len(months):
            raise ValueError("months is empty: pass at least one month")
        if months.hasnans:
            raise ValueError("month is missing")
        return index_ordinals(months)
    if isinstance(months, str | pd.Timestamp) or not isinstance(months, Iterable):
        months = [months]
    ordinals = [_string_ordinal(m) if isinstance(m, str) else month_ordinal(parse_month(m)) for m in months]
    if not ordinals:
        raise ValueError("months is empty: pass at least one month")
    return np.array(ordinals, dtype=np.int64)


def months_after(last, horizon) -> pd.DatetimeIndex:
    """The ``horizon`` month starts after month ``last`` (a whole number >= 1, else ValueError)."""
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"horizon must be a whole number of months >= 1, got {horizon!r}")
    return pd.date_range(pd.Timestamp(last) + pd.offsets.MonthBegin(1), periods=int(horizon), freq="MS",
                         name="month")
