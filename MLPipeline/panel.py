"""The tidy panel every later step reads: series ids, one period encoding, values and regressors.

A :class:`Panel` holds, per series (in data order), its first period (an ordinal of the panel's
:class:`~MLPipeline.calendars.Calendar`: a month ordinal for monthly data), its values as a float array over consecutive periods, and its regressor
rows as an ``(n, k)`` array (or None without regressors). Series may start and end at different
periods. Frames for people (figures, the saved ``data.csv``, the notebook) are built here, at the edge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from MLPipeline.calendars import MONTHLY, Calendar


@dataclass(frozen=True)
class Series:
    """One series: ``start`` (period ordinal of ``y[0]``), ``y`` and its regressor rows ``x``."""

    id: str
    start: int
    y: np.ndarray
    x: np.ndarray | None = None

    @property
    def end(self) -> int:
        return self.start + len(self.y) - 1

    def __len__(self) -> int:
        return len(self.y)

    def head(self, n: int) -> Series:
        """The first ``n`` periods (a training window)."""
        return Series(self.id, self.start, self.y[:n], None if self.x is None else self.x[:n])

    def tail_from(self, n: int) -> Series:
        """The periods from position ``n`` on (what a training window of ``n`` leaves out)."""
        return Series(self.id, self.start + n, self.y[n:], None if self.x is None else self.x[n:])

    def index(self, calendar: Calendar = MONTHLY) -> pd.DatetimeIndex:
        return calendar.index(np.arange(self.start, self.end + 1))

    def to_pandas(self, regressors: tuple[str, ...] = (), calendar: Calendar = MONTHLY
                  ) -> tuple[pd.Series, pd.DataFrame | None]:
        """(y as a Series on the calendar's periods, regressors as a DataFrame or None) for pandas-facing APIs."""
        index = self.index(calendar)
        y = pd.Series(self.y, index=index, name=self.id)
        if self.x is None or not regressors:
            return y, None
        return y, pd.DataFrame(self.x, index=index, columns=list(regressors))


@dataclass(frozen=True)
class Panel:
    """Validated series of one data file; built by :func:`MLPipeline.data.load_panel`."""

    series: tuple[Series, ...]
    regressors: tuple[str, ...] = ()
    source: str = ""
    layout: str = "wide"
    calendar: Calendar = MONTHLY
    #: series left out, with the reason (too short to model)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def frequency(self) -> str:
        return self.calendar.frequency

    def __post_init__(self):
        object.__setattr__(self, "_position", {s.id: i for i, s in enumerate(self.series)})

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.series)

    def __len__(self) -> int:
        return len(self.series)

    def __iter__(self) -> Iterator[Series]:
        return iter(self.series)

    def __getitem__(self, series_id: str) -> Series:
        return self.series[self._position[series_id]]

    def __contains__(self, series_id: object) -> bool:
        return series_id in self._position

    @property
    def start(self) -> int:
        return min(s.start for s in self.series)

    @property
    def end(self) -> int:
        return max(s.end for s in self.series)

    def long_frame(self) -> pd.DataFrame:
        """One row per (series, period): ``unique_id, month, y`` and the regressor columns (the period
        column is ``period`` for calendars other than months)."""
        parts = []
        for s in self.series:
            part = {"unique_id": np.repeat(s.id, len(s)),
                    self.calendar.field: self.calendar.labels(range(s.start, s.end + 1)), "y": s.y}
            for j, name in enumerate(self.regressors):
                part[name] = s.x[:, j]
            parts.append(pd.DataFrame(part))
        return pd.concat(parts, ignore_index=True)

    def wide_frame(self) -> pd.DataFrame:
        """Series as columns on the calendar's index (NaN outside each series' span)."""
        index = self.calendar.index(np.arange(self.start, self.end + 1))
        grid = np.full((len(index), len(self.series)), np.nan)
        for j, s in enumerate(self.series):
            grid[s.start - self.start:s.end - self.start + 1, j] = s.y
        return pd.DataFrame(grid, index=index, columns=list(self.ids))

    def sha256(self) -> str:
        """A content hash: same series, months, values and regressors, same hash, whatever the file."""
        digest = hashlib.sha256()
        digest.update(repr((self.frequency, self.regressors) if self.calendar.monthly
                           else (self.frequency, self.calendar.phase, self.regressors)).encode())
        for s in self.series:
            digest.update(s.id.encode() + b"\0" + str(s.start).encode() + b"\0")
            digest.update(np.ascontiguousarray(s.y, dtype=float).tobytes())
            if s.x is not None:
                digest.update(np.ascontiguousarray(s.x, dtype=float).tobytes())
        return digest.hexdigest()
