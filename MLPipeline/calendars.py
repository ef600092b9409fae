"""Periods as whole numbers: a :class:`Calendar` turns a frequency's timestamps into consecutive integers.

Everything after the loader works on period ordinals: consecutive periods differ by exactly 1, so a
series is its first ordinal plus an array. Months keep the month ordinal of :mod:`MLPipeline.months`
(``year * 12 + month - 1``). A fixed-length step (a week, a day, an hour, half an hour) counts steps
since 1970-01-01T00:00Z, shifted by the series' *phase*: weekly data on Mondays, or daily data at
23:00 UTC (midnight at +01:00), has stamps that are not multiples of the step since the epoch, and
the phase (the first stamp modulo the step) puts them back on whole numbers. The phase follows from
any one stamp, so a manifest needs only its frequency and its window's first period to rebuild the
calendar (:func:`calendar_for`).

On the wire a month is ``YYYY-MM`` and any other period an ISO 8601 UTC timestamp
(:func:`MLPipeline.frequency.format_period`); the API calls the field ``month`` for monthly
models, as it always has, and ``period`` otherwise (:attr:`Calendar.field`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np
import pandas as pd

from MLPipeline.config import HOLDOUT_MONTHS, MIN_MONTHS
from MLPipeline.frequency import FREQUENCIES, STEPS, FrequencyError, iso_utc, max_horizon, seasonal_periods
from MLPipeline.months import format_ordinal, index_ordinals, ordinal_index, ordinals_of

_EPOCH = np.datetime64(0, "ns")

#: Periods held out for evaluation by default: a year of months (as always), a quarter of weeks, four
#: weeks of days, and one week of hours and half-hours (a whole weekly cycle).
HOLDOUTS: dict[str, int] = {"monthly": HOLDOUT_MONTHS, "weekly": 13, "daily": 28, "hourly": 168, "half-hourly": 336}
#: What one period is called in messages.
UNITS: dict[str, str] = {"monthly": "month", "weekly": "week", "daily": "day", "hourly": "hour",
                         "half-hourly": "half-hour"}


def period_field(frequency: str) -> str:
    """What the API calls a period of ``frequency``: ``month`` for months, as it always has; ``period`` otherwise."""
    return "month" if frequency == "monthly" else "period"


class Calendar:
    """Ordinals, labels and timestamps of one frequency (and, for fixed steps, one phase).

    ``phase`` is in nanoseconds, ``0 <= phase < step``; months have none.
    """

    def __init__(self, frequency: str = "monthly", phase: int = 0):
        if frequency not in FREQUENCIES:
            raise FrequencyError(f"frequency must be one of {', '.join(FREQUENCIES)}, got {frequency!r}")
        self.frequency = frequency
        self.monthly = frequency == "monthly"
        self.step = None if self.monthly else int(STEPS[frequency].value)
        if self.monthly and phase:
            raise ValueError("months have no phase")
        self.phase = 0 if self.monthly else int(phase) % self.step
        self.unit = UNITS[frequency]
        #: name of the period field in the API's requests and responses
        self.field = period_field(frequency)
        self.periods = seasonal_periods(frequency)
        #: the shortest seasonal period in whole steps: the seasonal-naive lag and the MASE scale
        self.season = round(min(self.periods))
        self.max_horizon = max_horizon(frequency)
        self.holdout = HOLDOUTS[frequency]
        #: shortest series modelled: two cycles of the shortest period (two years of months, as always)
        self.min_length = MIN_MONTHS if self.monthly else 2 * self.season

    def __repr__(self) -> str:
        return f"Calendar({self.frequency!r}" + (f", phase={self.phase})" if self.phase else ")")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Calendar) and (self.frequency, self.phase) == (other.frequency, other.phase)

    def __hash__(self) -> int:
        return hash((self.frequency, self.phase))

    # ----------------------------------------------------------------------- conversions
    def ordinals(self, stamps) -> np.ndarray:
        """int64 ordinals of timestamps (a DatetimeIndex, datetime64 array, strings or dates).

        Raises ValueError for a stamp that is not on this calendar's steps.
        """
        if self.monthly:
            return ordinals_of(stamps)
        ns = _utc_ns(stamps)
        offset = ns - self.phase
        off_step = offset % self.step != 0
        if off_step.any():
            bad = ns[int(np.flatnonzero(off_step)[0])]
            raise ValueError(f"{iso_utc(bad)} is not on this model's {self.frequency} steps "
                             f"(they fall at {self.label(0)} plus whole {self.unit}s)")
        return offset // self.step

    def ordinal(self, value) -> int:
        """One period (a label such as ``2021-03`` / ``2021-03-28T02:00:00Z``, or a timestamp)."""
        return int(self.ordinals([value])[0]) if not isinstance(value, str) else _parse(self, value)

    def index(self, ordinals) -> pd.DatetimeIndex:
        """Naive UTC DatetimeIndex of ordinals (month starts for months), named after the field."""
        if self.monthly:
            return ordinal_index(ordinals)
        ns = np.asarray(ordinals, dtype=np.int64) * self.step + self.phase
        return pd.DatetimeIndex(ns.astype("datetime64[ns]"), name=self.field)

    def index_ordinals(self, index: pd.DatetimeIndex) -> np.ndarray:
        """Ordinals of a naive DatetimeIndex, in one step (the inverse of :meth:`index`)."""
        return index_ordinals(index) if self.monthly else self.ordinals(index)

    def label(self, ordinal) -> str:
        """The wire form of one ordinal."""
        if self.monthly:
            return format_ordinal(ordinal)
        return iso_utc(int(ordinal) * self.step + self.phase)

    def labels(self, ordinals: Iterable) -> list[str]:
        return [self.label(o) for o in ordinals]

    def describe(self) -> str:
        """``"hourly"``, or ``"weekly (phase 4 days)"`` where the steps are offset from the epoch."""
        return self.frequency + (f" (steps at {self.label(0)} plus whole {self.unit}s)" if self.phase else "")


@functools.lru_cache(maxsize=8192)
def _parse(calendar: Calendar, text: str) -> int:
    # cached: requests repeat the same few periods, and parsing one costs microseconds
    return int(calendar.ordinals([text])[0])


def _utc_ns(stamps) -> np.ndarray:
    """Nanoseconds since the epoch, UTC; an offset is converted, a naive stamp is UTC as written."""
    if isinstance(stamps, np.ndarray) and stamps.dtype.kind == "M":
        return stamps.astype("datetime64[ns]").astype(np.int64)
    if isinstance(stamps, str | pd.Timestamp) or not isinstance(stamps, Iterable):
        stamps = [stamps]
    if isinstance(stamps, pd.DatetimeIndex):
        index = stamps
    else:
        try:
            index = pd.DatetimeIndex(pd.to_datetime(list(stamps), utc=True, format="ISO8601"))
        except (ValueError, TypeError, OverflowError) as exc:
            raise ValueError(f"not an ISO 8601 timestamp ({exc}); write e.g. 2021-03-28T02:00:00Z") from None
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    if index.hasnans:
        raise ValueError("a timestamp is missing")
    return index.as_unit("ns").asi8


MONTHLY = Calendar("monthly")


def calendar_for(frequency: str, anchor=None) -> Calendar:
    """The calendar of ``frequency`` whose steps fall on ``anchor`` (any one period of the data:
    a timestamp or its label); months need none."""
    if frequency == "monthly" or frequency is None:
        return MONTHLY
    if anchor is None:
        return Calendar(frequency)
    step = int(STEPS[frequency].value)
    return Calendar(frequency, int(_utc_ns([anchor])[0]) % step)
