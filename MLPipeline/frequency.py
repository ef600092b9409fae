"""A data file's frequency, read from its timestamps: monthly, weekly, daily, hourly or half-hourly.

The rule for clocks: **timestamps are taken as UTC.** One that carries an offset (``2021-03-28T02:00+02:00``)
is converted to UTC; one without (``2021-03-28 02:00``, an Excel date cell) is read as UTC as written. UTC
has no daylight-saving days, so every step of an hourly series is one hour. A series exported in local
wall-clock time has a repeated hour on the autumn change and a missing one in spring: it is refused
with a line that names the hour and says to export UTC (or times with their offset). Local wall-clock
is not guessed because the same naive hour means two instants on the autumn day, and nothing in the
file says which.

A frequency decides the seasonal periods the models use (in steps) and how a period is written on the
wire: ``YYYY-MM`` for months, as always; ISO 8601 UTC timestamps (``2021-03-28T02:00:00Z``) otherwise.
Monthly data keeps its own path (:mod:`MLPipeline.periods`); this module tells it apart from the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

FREQUENCIES: tuple[str, ...] = ("monthly", "weekly", "daily", "hourly", "half-hourly")

#: One step of each fixed-length frequency (a month has none: its steps are calendar months).
STEPS: dict[str, pd.Timedelta] = {
    "weekly": pd.Timedelta(days=7),
    "daily": pd.Timedelta(days=1),
    "hourly": pd.Timedelta(hours=1),
    "half-hourly": pd.Timedelta(minutes=30),
}

_YEAR_DAYS = 365.25
#: Seasonal periods in steps: a month's year; a week's year; a day's week and year; and the day and
#: week of hours and half-hours (their year is left to the slow level: a year of half-hours is 17,532
#: steps, longer than most such series).
SEASONAL_PERIODS: dict[str, tuple[float, ...]] = {
    "monthly": (12.0,),
    "weekly": (_YEAR_DAYS / 7,),
    "daily": (7.0, _YEAR_DAYS),
    "hourly": (24.0, 168.0),
    "half-hourly": (48.0, 336.0),
}

#: Furthest a forecast reaches, in steps: five years of months (the service's limit today), two years
#: of weeks, a year of days, and two weekly cycles of hours and half-hours (past that the weekly shape
#: is all the model knows, and a re-fit on fresh data is cheaper than a long forecast).
HORIZON_LIMITS: dict[str, int] = {"monthly": 60, "weekly": 104, "daily": 366, "hourly": 336, "half-hourly": 672}

_MONTH_DAYS = (pd.Timedelta(days=28), pd.Timedelta(days=31))


class FrequencyError(ValueError):
    """Timestamps that do not make one regular series of one frequency; the message says what to change."""


def parse_timestamps(values: Sequence) -> np.ndarray:
    """UTC ``datetime64[ns]`` for a period column (see the module docstring for the clock rule)."""
    try:
        stamps = pd.to_datetime(pd.Series(list(values), dtype=object), utc=True, format="mixed")
    except (ValueError, TypeError, OverflowError) as exc:
        for position, value in enumerate(values):
            try:
                pd.to_datetime([value], utc=True, format="mixed")
            except (ValueError, TypeError, OverflowError):
                raise FrequencyError(f"value {position + 1} ({value!r}) is not a timestamp; write ISO 8601, "
                                     "e.g. 2021-03-28T02:00:00Z or 2021-03-28 02:00") from None
        raise FrequencyError(f"the period column cannot be read as timestamps: {exc}") from None
    if stamps.isna().any():
        position = int(np.flatnonzero(stamps.isna().to_numpy())[0])
        raise FrequencyError(f"value {position + 1} of the period column is empty")
    return stamps.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")


#: How a period other than a month is written on the wire (and in saved files and messages).
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def iso_utc(stamp) -> str:
    """A naive UTC timestamp (or nanoseconds since the epoch) as ``2021-03-28T02:00:00Z``."""
    return pd.Timestamp(stamp).strftime(ISO_FORMAT)


def _dst_hint(stamp, name: str) -> str:
    """A hint when a sub-daily irregularity sits where a daylight-saving change would put it."""
    stamp = pd.Timestamp(stamp)
    if name in ("hourly", "half-hourly") and stamp.month in (3, 4, 10, 11) and stamp.hour <= 4:
        return (" - if these are local wall-clock times, that is a daylight-saving change: timestamps are "
                "read as UTC, so export UTC times or times with their offset (+01:00)")
    return ""


def _is_monthly(steps: np.ndarray, stamps: np.ndarray) -> bool:
    lo, hi = (np.timedelta64(d.value, "ns") for d in _MONTH_DAYS)
    days = pd.DatetimeIndex(stamps).day
    return bool(np.all((steps >= lo) & (steps <= hi))) and len(set(days)) <= 4


def _series_frequency(series: str, stamps: np.ndarray, expected: str | None) -> str | None:
    """The frequency of one series' timestamps, or None when it has a single one (nothing to tell)."""
    stamps = np.sort(stamps)
    steps = np.diff(stamps)
    same = np.flatnonzero(steps == np.timedelta64(0, "ns"))
    if len(same):
        at = stamps[same[0]]
        name = expected or _common_name(steps[steps > np.timedelta64(0, "ns")])
        raise FrequencyError(f"series {series!r}: timestamp {iso_utc(at)} appears twice{_dst_hint(at, name or '')}")
    if not len(steps):
        return expected
    if expected == "monthly" or (expected is None and _is_monthly(steps, stamps)):
        if not _is_monthly(steps, stamps):
            bad = int(np.flatnonzero((steps < np.timedelta64(28, "D")) | (steps > np.timedelta64(31, "D")))[0])
            raise FrequencyError(f"series {series!r}: {iso_utc(stamps[bad])} is followed by {iso_utc(stamps[bad + 1])}, "
                                 "not by the next month")
        return "monthly"
    name = expected or _common_name(steps)
    if name is None:
        step = pd.Timedelta(np.median(steps.astype(np.int64)))
        raise FrequencyError(f"series {series!r}: its timestamps are {step} apart, which is none of the "
                             f"frequencies {', '.join(FREQUENCIES)}; add the values up to one of them")
    step = np.timedelta64(STEPS[name].value, "ns")
    bad = np.flatnonzero(steps != step)
    if len(bad):
        before, after = stamps[bad[0]], stamps[bad[0] + 1]
        raise FrequencyError(
            f"series {series!r}: irregular {name} timestamps: {iso_utc(before)} is followed by {iso_utc(after)}, "
            f"not {iso_utc(before + step)}{_dst_hint(before, name)}")
    return name


def _common_name(steps: np.ndarray) -> str | None:
    """The fixed-length frequency whose step is the series' most common one."""
    if not len(steps):
        return None
    values, counts = np.unique(steps, return_counts=True)
    common = values[np.argmax(counts)]
    return next((name for name, step in STEPS.items() if np.timedelta64(step.value, "ns") == common), None)


def detect_frequency(stamps: Mapping[str, np.ndarray], expected: str | None = None) -> str:
    """The one frequency of every series' timestamps (``series id -> UTC datetime64``).

    ``expected`` (``Engine.py --freq``) is checked rather than inferred. Raises :class:`FrequencyError`
    for duplicated or irregular timestamps, for series of different frequencies, and for a step that
    is no supported frequency.
    """
    if expected is not None and expected not in FREQUENCIES:
        raise FrequencyError(f"frequency must be one of {', '.join(FREQUENCIES)}, got {expected!r}")
    found: dict[str, str] = {}
    for series, values in stamps.items():
        name = _series_frequency(series, np.asarray(values, dtype="datetime64[ns]"), expected)
        if name is not None:
            found[series] = name
    names = sorted(set(found.values()), key=FREQUENCIES.index)
    if not names:
        raise FrequencyError("no series has two timestamps: the frequency cannot be told; pass --freq")
    if len(names) > 1:
        first = {name: next(s for s, n in found.items() if n == name) for name in names}
        listing = ", ".join(f"series {s!r} is {n}" for n, s in first.items())
        raise FrequencyError(f"mixed frequencies: {listing}; one file holds series of one frequency")
    return names[0]


def seasonal_periods(frequency: str) -> tuple[float, ...]:
    """Seasonal periods, in steps, that models of this frequency use."""
    if frequency not in SEASONAL_PERIODS:
        raise FrequencyError(f"frequency must be one of {', '.join(FREQUENCIES)}, got {frequency!r}")
    return SEASONAL_PERIODS[frequency]


def max_horizon(frequency: str) -> int:
    """Furthest forecast, in steps, for this frequency."""
    seasonal_periods(frequency)  # the one check of the name
    return HORIZON_LIMITS[frequency]


def format_period(frequency: str, stamp) -> str:
    """A period on the wire: ``YYYY-MM`` for months, an ISO 8601 UTC timestamp otherwise."""
    stamp = pd.Timestamp(stamp)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.strftime("%Y-%m") if frequency == "monthly" else iso_utc(stamp)


def future_stamps(frequency: str, last, steps: int) -> np.ndarray:
    """The ``steps`` timestamps after ``last`` (UTC datetime64)."""
    last = pd.Timestamp(last)
    if frequency == "monthly":
        start = last.to_period("M").to_timestamp()
        return pd.date_range(start, periods=steps + 1, freq="MS")[1:].to_numpy()
    step = np.timedelta64(STEPS[frequency].value, "ns")
    return np.datetime64(last.to_datetime64(), "ns") + step * np.arange(1, steps + 1)
