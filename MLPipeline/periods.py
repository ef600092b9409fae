"""A data file's period column -> integer month ordinals (year * 12 + month - 1).

The one period encoding of the project is the month ordinal of :mod:`MLPipeline.months`; this
module turns what real exports put in a period column into it, column by column, so that a
column is read one way throughout:

* dates and datetimes (Excel date cells, ISO strings ``2011-01``, ``2011-01-31``, ``2011/01/31``,
  ``2011-01-31 00:00:00``);
* Excel serial day numbers (``40574`` = 2011-01-31), when *every* value of the column is one;
* slash dates ``31/01/2011``: day first, as European exports write them, unless no first field
  exceeds 12 and some second field does (then month first, as US exports write them);
* month labels ``Jan-2011``, ``January 2011`` and Excel's ``mmm-yy`` display ``Jan-11``
  (two-digit years: 00-68 -> 2000s, 69-99 -> 1900s, as Python's ``%y``).

Errors are ``PeriodError(position, message)``; the caller adds the file and row.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from MLPipeline.months import YEAR_RANGE, parse_month

#: Excel's 1900 date system counts days from 1899-12-30 (it believes 1900 was a leap year).
EXCEL_EPOCH = dt.date(1899, 12, 30)
_SERIAL_RANGE = (1, (dt.date(YEAR_RANGE[1] + 1, 1, 1) - EXCEL_EPOCH).days)
_ISO_SLASH = re.compile(r"^\s*(\d{4})/(\d{1,2})(?:/(\d{1,2}))?([ T][0-9:.]+)?\s*$")
_SLASH = re.compile(r"^\s*(\d{1,2})[/.](\d{1,2})[/.](\d{4})(?:[ T][0-9:.]+)?\s*$")
_LABEL = re.compile(r"^\s*([A-Za-z]{3,9})\.?[-\s/]*('?)(\d{2}|\d{4})\s*$")
_MONTH_NAMES = {name.lower(): i for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_MONTH_NAMES.update({full.lower(): i for i, full in enumerate(
    ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
     "November", "December"), start=1)})
_MONTH_NAMES["sept"] = 9


class PeriodError(ValueError):
    """A period value that cannot be read; ``position`` is its 0-based index in the column."""

    def __init__(self, position: int, message: str):
        super().__init__(message)
        self.position = position


def _ordinal(year: int, month: int) -> int:
    return year * 12 + month - 1


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or (
        isinstance(value, str) and not value.strip()) or value is pd.NaT


def _is_number(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float | np.integer | np.floating):
        return True
    return isinstance(value, str) and re.fullmatch(r"\s*\d+(\.0+)?\s*", value) is not None


def _serial(position: int, value) -> int:
    number = float(value)
    if not number.is_integer() or not _SERIAL_RANGE[0] <= number <= _SERIAL_RANGE[1]:
        raise PeriodError(position, f"{value!r} is not a month: a number in the period column is read as an "
                                    f"Excel serial date, which must be a whole day from 1 to {_SERIAL_RANGE[1]}")
    day = EXCEL_EPOCH + dt.timedelta(days=int(number))
    if not YEAR_RANGE[0] <= day.year <= YEAR_RANGE[1]:
        raise PeriodError(position, f"Excel serial date {value!r} ({day}) is outside the years "
                                    f"{YEAR_RANGE[0]}..{YEAR_RANGE[1]}")
    return _ordinal(day.year, day.month)


def _label(position: int, match: re.Match, text: str) -> int:
    name, year = match.group(1).lower(), match.group(3)
    if name not in _MONTH_NAMES:
        raise PeriodError(position, f"{text!r} is not a month: unknown month name {match.group(1)!r}")
    year_number = int(year)
    if len(year) == 2:
        year_number += 2000 if year_number <= 68 else 1900
    if not YEAR_RANGE[0] <= year_number <= YEAR_RANGE[1]:
        raise PeriodError(position, f"month {text!r} is outside the supported years {YEAR_RANGE[0]}..{YEAR_RANGE[1]}")
    return _ordinal(year_number, _MONTH_NAMES[name])


def _slash_order(values: Sequence, present: np.ndarray) -> str:
    """'dmy' or 'mdy' for the column's slash dates (see the module docstring)."""
    first_big = second_big = False
    for i in np.flatnonzero(present):
        value = values[i]
        match = _SLASH.match(value) if isinstance(value, str) else None
        if match:
            first_big |= int(match.group(1)) > 12
            second_big |= int(match.group(2)) > 12
    return "mdy" if second_big and not first_big else "dmy"


def _slash(position: int, match: re.Match, text: str, order: str) -> int:
    a, b, year = int(match.group(1)), int(match.group(2)), int(match.group(3))
    day, month = (a, b) if order == "dmy" else (b, a)
    try:
        dt.date(year, month, day)
    except ValueError:
        layout = "dd/mm/yyyy" if order == "dmy" else "mm/dd/yyyy"
        raise PeriodError(position, f"{text!r} is not a valid {layout} date (the column is read as {layout})") from None
    if not YEAR_RANGE[0] <= year <= YEAR_RANGE[1]:
        raise PeriodError(position, f"month {text!r} is outside the supported years {YEAR_RANGE[0]}..{YEAR_RANGE[1]}")
    return _ordinal(year, month)


def month_ordinals(values: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """(ordinals, present) for a period column: int64 month ordinals (0 where missing) and a mask.

    Raises :class:`PeriodError` for the first value that cannot be read.
    """
    values = list(values)
    present = np.array([not _is_missing(v) for v in values], dtype=bool)
    out = np.zeros(len(values), dtype=np.int64)
    if not present.any():
        return out, present
    serial = all(_is_number(values[i]) for i in np.flatnonzero(present))
    order = _slash_order(values, present)
    for i in np.flatnonzero(present):
        value = values[i]
        if serial:
            out[i] = _serial(int(i), value)
            continue
        if _is_number(value):
            raise PeriodError(int(i), f"{value!r} is a number among dates: a period column is read as Excel "
                                      "serial dates only when every value is one; write every month the same way")
        if isinstance(value, str):
            text = value.strip()
            if _ISO_SLASH.match(text):  # 2011/01/31: ISO order with slashes
                value = text.replace("/", "-")
            match = _SLASH.match(text)
            if match:
                out[i] = _slash(int(i), match, text, order)
                continue
            match = _LABEL.match(text)
            if match:
                out[i] = _label(int(i), match, text)
                continue
        try:
            month = parse_month(value)
        except ValueError as exc:
            raise PeriodError(int(i), f"{exc}; accepted: YYYY-MM, YYYY-MM-DD, dd/mm/yyyy, Jan-2011, "
                                      "or Excel dates") from None
        out[i] = _ordinal(month.year, month.month)
    return out, present


def days_per_month(values: Sequence, present: np.ndarray) -> int:
    """The most distinct calendar days any one month has in the column (1 for monthly data).

    Tells a duplicated month (a typo) from data of another frequency (several dates a month).
    """
    days: dict[tuple[int, int], set] = {}
    for i in np.flatnonzero(present):
        value = values[i]
        try:
            stamp = pd.Timestamp(value) if not isinstance(value, str) or not _SLASH.match(value) else None
        except (ValueError, TypeError, OverflowError):
            stamp = None
        if stamp is None or pd.isna(stamp):
            continue
        days.setdefault((stamp.year, stamp.month), set()).add(stamp.day)
    return max((len(d) for d in days.values()), default=1)
