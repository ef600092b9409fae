"""Answers computed at load time: every period a univariate model serves, at the usual levels.

A model without regressors answers a month the same whatever else a request holds, so its whole
served range (the training window plus ``MAX_HORIZON`` months) is predicted once, vectorised, when
the bundle loads. A request
for any of those months at levels the table holds is then an array look-up, not a forecaster
call: the first request for a month no longer runs the ensemble for every series asked for,
which set the p99 latency. Models that use regressors, and other levels, still go through the
forecaster (and the answer cache).

The table holds what ``predict_at`` returns for all months in one call; it equals month-by-month
calls to rounding (relative differences below 1e-10, tests/test_tables.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from MLPipeline.calendars import MONTHLY, Calendar
from MLPipeline.intervals import interval_columns

#: /predict's and /forecast's default levels (80, 95) and /anomalies' default (99).
TABLE_LEVELS: tuple[float, ...] = (80.0, 95.0, 99.0)


class MonthTable:
    """``predict_at`` of one univariate forecaster for every period from ordinal ``first`` to ``last``.

    ``values`` is a read-only (periods, 2 + 2 x levels) array with :func:`interval_columns`
    columns; rows are consecutive periods (of ``calendar``) starting at ``first``.
    """

    def __init__(self, forecaster, first: int, last: int, calendar: Calendar = MONTHLY,
                 levels: Sequence[float] = TABLE_LEVELS) -> None:
        if forecaster.regressors_:
            raise ValueError("a month table needs a model without regressors")
        frame = forecaster.predict_at(calendar.index(np.arange(first, last + 1)), level=tuple(levels))
        self.first = int(first)
        self.last = int(last)
        self.levels = frozenset(float(lv) for lv in levels)
        self._column = {name: i for i, name in enumerate(frame.columns)}
        self.values = frame.to_numpy(dtype=float)
        self.values.setflags(write=False)

    def covers(self, levels: Sequence[float], ordinals: np.ndarray | None = None) -> bool:
        """Whether the table holds these levels (and, given ``ordinals``, these periods)."""
        if ordinals is not None and len(ordinals) and (ordinals.min() < self.first or ordinals.max() > self.last):
            return False
        return all(float(lv) in self.levels for lv in levels)

    def lookup(self, ordinals: np.ndarray, levels: Sequence[float]) -> np.ndarray:
        """Rows for month ordinals (year * 12 + month - 1, repeats allowed), columns for ``levels``.

        The caller has checked the months are in range and :meth:`covers` the levels.
        """
        rows = np.asarray(ordinals, dtype=np.int64) - self.first
        if len(rows) and (rows.min() < 0 or rows.max() > self.last - self.first):
            raise IndexError("month outside the table")
        columns = [self._column[name] for name in interval_columns(levels)]
        return self.values[np.ix_(rows, columns)]
