"""Answers computed at training: every month a univariate preferred model serves, at the usual levels.

The run saved them as one columnar array (:mod:`MLPipeline.served_tables`); the bundle maps it
read-only, so the workers of a host share one copy and a worker starts without running a model. A
request for any of those months at levels the table holds is an array look-up, not a forecaster
call. Models that use regressors, other levels, and months outside a table still go through the
forecaster (and the answer cache).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from MLPipeline.intervals import interval_columns
from MLPipeline.served_tables import INDEX_FIRST, INDEX_ROW, INDEX_ROWS, TABLE_LEVELS

__all__ = ["TABLE_LEVELS", "MonthTable", "MonthTables"]

_COLUMN = {name: i for i, name in enumerate(interval_columns(TABLE_LEVELS))}


class MonthTable:
    """The rows of one series: ``values`` is a read-only (months, 2 + 2 x levels) view with
    :func:`interval_columns` columns; rows are consecutive months starting at ``first``."""

    levels = frozenset(TABLE_LEVELS)

    def __init__(self, values: np.ndarray, first: int) -> None:
        self.values = values
        self.first = int(first)
        self.last = self.first + len(values) - 1

    def covers(self, levels: Sequence[float], ordinals: np.ndarray | None = None) -> bool:
        """Whether the table holds these levels (and, given ``ordinals``, these periods)."""
        if ordinals is not None and len(ordinals) and (ordinals.min() < self.first or ordinals.max() > self.last):
            return False
        return all(float(lv) in self.levels for lv in levels)

    def holds(self, ordinals: np.ndarray) -> bool:
        return not len(ordinals) or (int(ordinals.min()) >= self.first and int(ordinals.max()) <= self.last)

    def lookup(self, ordinals: np.ndarray, levels: Sequence[float]) -> np.ndarray:
        """Rows for month ordinals (year * 12 + month - 1, repeats allowed), columns for ``levels``.

        The caller has checked :meth:`holds` the months and :meth:`covers` the levels.
        """
        rows = np.asarray(ordinals, dtype=np.int64) - self.first
        if len(rows) and (rows.min() < 0 or rows.max() > self.last - self.first):
            raise IndexError("month outside the table")
        columns = [_COLUMN[name] for name in interval_columns(levels)]
        return self.values[np.ix_(rows, columns)]


class MonthTables(Mapping):
    """(series, preferred kind) -> :class:`MonthTable`, a view into the mapped array made on access.

    ``series`` maps every id to its preferred kind in manifest order (the index's row order).
    """

    def __init__(self, values: np.ndarray, index: np.ndarray, series: Mapping[str, str]) -> None:
        self._values = values
        self._index = index
        self._position = {(sid, kind): i for i, (sid, kind) in enumerate(series.items())
                          if index[i, INDEX_ROWS] > 0}

    def __getitem__(self, key: tuple[str, str]) -> MonthTable:
        table = self.get(key)
        if table is None:
            raise KeyError(key)
        return table

    def get(self, key, default=None):
        i = self._position.get(key)
        if i is None:
            return default
        first, row, rows = self._index[i, INDEX_FIRST], self._index[i, INDEX_ROW], self._index[i, INDEX_ROWS]
        return MonthTable(self._values[row:row + rows], first)

    def __contains__(self, key: object) -> bool:
        return key in self._position

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._position)

    def __len__(self) -> int:
        return len(self._position)
