"""Month tables written at training: every month a univariate model serves, at the usual levels.

A model without regressors answers a month the same whatever else a request holds, so its whole
served range (from its first month to ``max_horizon`` months past its training window) is
predicted once, vectorised, where the model was fitted. The run saves all of them as one columnar
array, ``tables.npy`` (float64, one row per series and month, :func:`interval_columns` of
:data:`TABLE_LEVELS`), with ``table_index.npy`` (int64, one row per series in manifest order:
first month ordinal, first row, rows; 0 rows for a series whose preferred model uses regressors).
Both are named in the manifest with their sha256, like every file of a run. A service worker maps
them read-only (``np.load(mmap_mode="r")``), so the workers on one host share one copy in the page
cache and a worker starts without unpickling or running any model (:mod:`service.tables`).

The table holds what ``predict_at`` returns for all its months in one call; it equals
month-by-month calls to rounding (relative differences below 1e-10, tests/test_tables.py).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from MLPipeline.calendars import MONTHLY, Calendar

#: /predict's and /forecast's default levels (80, 95) and /anomalies' default (99).
TABLE_LEVELS: tuple[float, ...] = (80.0, 95.0, 99.0)
TABLES_NAME = "tables.npy"
TABLE_INDEX_NAME = "table_index.npy"
#: the columns of ``table_index.npy``
INDEX_FIRST, INDEX_ROW, INDEX_ROWS = 0, 1, 2


def served_last(last: int, calendar: Calendar = MONTHLY) -> int:
    """The last period (ordinal) a series whose training window ends at ``last`` is served for."""
    return last + calendar.max_horizon


def month_rows(forecaster, last: int, levels: Sequence[float] = TABLE_LEVELS, calendar: Calendar = MONTHLY,
               first: int | None = None) -> tuple[int, np.ndarray]:
    """(first ordinal, rows): ``predict_at`` of a univariate forecaster for every period from ``first``
    (default: its first) to ``last`` (ordinals of ``calendar``), as a (periods, 2 + 2 x levels) float64
    array. Raises ValueError for a model with regressors, or one that predicts non-finite values (the
    run then serves a fallback)."""
    if forecaster.regressors_:
        raise ValueError("a month table needs a model without regressors")
    own = calendar.ordinal(forecaster.first_month())
    first = own if first is None else max(own, first)
    frame = forecaster.predict_at(calendar.index(np.arange(first, last + 1)), level=tuple(levels))
    values = frame.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("the model predicts non-finite values in its served range")
    return first, values


def preferred_rows(models: dict, preferred: str, last: int, calendar: Calendar = MONTHLY
                   ) -> tuple[int, np.ndarray | None]:
    """The table of a trained series' preferred model ((0, None) when it uses regressors).

    Months: the whole served range. Finer steps: the forecast range and the held-out span before it,
    as a year of half-hours' fitted variances would cost seconds per series; older periods are
    asked for rarely and go to the model.
    """
    model = models[preferred]
    if model.regressors_:
        return 0, None
    first = None if calendar.monthly else last + 1 - calendar.holdout
    return month_rows(model, served_last(last, calendar), calendar=calendar, first=first)


def pack(tables: Sequence[tuple[int, np.ndarray | None]], width: int) -> tuple[bytes, bytes]:
    """``(tables.npy, table_index.npy)`` bytes for (first ordinal, rows or None) per series, in order."""
    index = np.zeros((len(tables), 3), dtype=np.int64)
    row = 0
    for i, (first, rows) in enumerate(tables):
        count = 0 if rows is None else len(rows)
        index[i] = (first, row, count)
        row += count
    present = [rows for _, rows in tables if rows is not None]
    values = np.concatenate(present) if present else np.empty((0, width))
    return _npy(np.ascontiguousarray(values, dtype=np.float64)), _npy(index)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
