"""Where a number comes from: the precomputed month table, else the answer cache, else the model.

:func:`answer_at` is the one place that decides, for one series and kind: a univariate preferred
model's months come from its :class:`~service.tables.MonthTable`; anything else is a forecaster call
whose answer the loaded model's :class:`~service.cache.PredictionCache` keeps (keyed by the whole
call: a difference model sums a path, so rows of one call are not independent). Each optimisation
is pinned to a plain forecaster call by the reference tests (tests/test_answers.py).

Requests repeat months with different regressors (what-if scenarios). The forecaster looks
regressors up by month, so :class:`Inputs` splits such a request into calls without repeated months
(the k-th occurrence of every month in call k) and predicts identical rows once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from MLPipeline.calendars import MONTHLY, Calendar
from MLPipeline.intervals import interval_columns
from service.errors import ApiError

#: How often one request may repeat a month with different regressors. Each repeat costs another
#: forecaster call per series (a few ms); this bound keeps the worst 1,000-instance batch well under
#: a second.
MAX_REPEATS = 50


def unprocessable(code: str, message: str, field: str | None = None) -> ApiError:
    return ApiError(422, code, message, field)


def finite(values: np.ndarray) -> np.ndarray:
    if not np.isfinite(values).all():
        raise unprocessable("unpredictable_input", "the model gave non-finite values for these inputs")
    return values


def _occurrences(keys: list[Any]) -> np.ndarray:
    """For each key, how many times it appeared before (0 for a first occurrence)."""
    seen: dict[Any, int] = {}
    out = np.empty(len(keys), dtype=int)
    for i, key in enumerate(keys):
        out[i] = seen.get(key, 0)
        seen[key] = out[i] + 1
    return out


class Inputs:
    """One request's months and one series' regressor rows, and the forecaster calls they need.

    ``ordinals`` are period ordinals of ``calendar`` (request order, repeats allowed); ``x`` the
    regressor rows (None for a model without regressors); ``last`` the series' last training period;
    ``assumed`` the regressor values a difference model's path uses for months the request does not give.
    """

    def __init__(self, ordinals: np.ndarray, x: np.ndarray | None, names: Sequence[str], last: int,
                 assumed: np.ndarray | None, field: str | None = None, calendar: Calendar = MONTHLY) -> None:
        self.calendar = calendar
        self.ordinals = np.asarray(ordinals, dtype=np.int64)
        self.x = x
        self.names = tuple(names)
        self.last = last
        self.assumed = assumed
        self.field = field
        self.key = (self.ordinals.tobytes(), b"" if x is None else np.ascontiguousarray(x).tobytes())
        self._plans: dict[tuple[bool, bool], tuple] = {}

    def path_gaps(self) -> np.ndarray:
        """Months after the training window, up to the last one asked for, that the request lacks:
        a difference model's path runs through them with the assumed regressors."""
        path = np.arange(self.last + 1, self.ordinals.max() + 1)
        return path[~np.isin(path, self.ordinals)]

    def plan(self, use_x: bool, path: bool) -> tuple[np.ndarray | None, int, list]:
        """(rows back to request order or None, distinct rows, [(rows, months, X), ...])."""
        key = (use_x, use_x and path)
        if key not in self._plans:
            self._plans[key] = self._plan(*key)
        return self._plans[key]

    def _plan(self, use_x: bool, path: bool) -> tuple[np.ndarray | None, int, list]:
        ordinals = self.ordinals.tolist()
        keys = list(zip(ordinals, *self.x.T.tolist(), strict=True)) if use_x else ordinals
        first: dict[Any, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        back = None
        distinct = np.arange(len(keys))
        if len(first) < len(keys):  # repeated rows: predict the distinct ones, then map back
            position = {key: j for j, key in enumerate(first)}
            back = np.array([position[key] for key in keys])
            distinct = np.fromiter(first.values(), dtype=int, count=len(first))
        occurrence = _occurrences(self.ordinals[distinct].tolist())
        if occurrence.max() >= MAX_REPEATS:
            raise unprocessable(
                "too_many_repeats",
                f"a request may give one month at most {MAX_REPEATS} times with different regressors; "
                "split larger what-if sets over several requests",
                self.field,
            )
        calls = []
        for k in range(int(occurrence.max()) + 1):
            rows = np.flatnonzero(occurrence == k)
            taken = distinct[rows]
            months = self.calendar.index(self.ordinals[taken])
            x = self._frame(taken, path) if use_x else None
            calls.append((rows, months, x))
        return back, len(distinct), calls

    def _frame(self, taken: np.ndarray, path: bool) -> pd.DataFrame:
        """The regressors of rows ``taken``; with ``path``, also one row for every month on the way
        there that the call lacks: the request's value for that month if it gives one, else the
        assumed value (the same median the response's assumption text states)."""
        ordinals, x = self.ordinals[taken], self.x[taken]
        if path and ordinals.max() > self.last:
            steps = np.arange(self.last + 1, ordinals.max() + 1)
            missing = steps[~np.isin(steps, ordinals)]
            if len(missing):
                given = {}
                for month, row in zip(self.ordinals.tolist(), self.x, strict=True):
                    given.setdefault(month, row)
                fill = np.array([given.get(month, self.assumed) for month in missing.tolist()])
                ordinals, x = np.concatenate([ordinals, missing]), np.vstack([x, fill])
        return pd.DataFrame(x, index=self.calendar.index(ordinals), columns=list(self.names))


def _from_table(model, series_id: str, kind: str, ordinals: np.ndarray, levels: Sequence[float]) -> np.ndarray | None:
    """The precomputed rows for these months, or None when no table holds them at these levels."""
    table = model.tables.get((series_id, kind))
    if table is None or not table.covers(levels) or not table.holds(ordinals):
        return None
    return finite(table.lookup(ordinals, levels))


def answer_at(model, series_id: str, kind: str, inputs: Inputs, levels: Sequence[float]) -> np.ndarray:
    """Rows of :func:`interval_columns` for the request's months, in request order: the month table,
    else the cache, else the forecaster."""
    found = _from_table(model, series_id, kind, inputs.ordinals, levels)
    if found is not None:
        return found
    forecaster = model.forecaster(series_id, kind)
    months, x = inputs.key
    key = (series_id, kind, "at", tuple(map(float, levels)), months, x if forecaster.regressors_ else b"")
    return model.cache.get_or_compute(key, lambda: _compute_at(forecaster, inputs, levels))


def _compute_at(forecaster, inputs: Inputs, levels: Sequence[float]) -> np.ndarray:
    """``predict_at`` for the request's rows (repeats allowed), in request order, as one array."""
    use_x = bool(forecaster.regressors_)
    back, distinct, calls = inputs.plan(use_x, forecaster.sums_path())
    columns = interval_columns(levels)
    out = np.empty((distinct, len(columns)))
    for rows, months, x in calls:
        pred = forecaster.predict_at(months, X=x, level=tuple(levels))
        out[rows] = (pred if list(pred.columns) == columns else pred[columns]).to_numpy(dtype=float)
    finite(out)
    return out if back is None else out[back]


def answer_path(model, series_id: str, kind: str, horizon: int, x: np.ndarray | None, names: Sequence[str],
                levels: Sequence[float]) -> np.ndarray:
    """The ``horizon`` months after the series' window: the month table, else cache, else forecaster."""
    last = model.series[series_id].info.last
    path = last + 1 + np.arange(horizon)
    use_x = bool(model.facts[(series_id, kind)].regressors)

    def compute() -> np.ndarray:
        found = _from_table(model, series_id, kind, path, levels)
        if found is not None:
            return found
        forecaster = model.forecaster(series_id, kind)
        future = pd.DataFrame(x, index=model.calendar.index(path), columns=list(names)) if use_x else None
        pred = forecaster.predict(horizon=horizon, X_future=future, level=tuple(levels))
        return finite(pred[interval_columns(levels)].to_numpy(dtype=float))

    key = (series_id, kind, "path", horizon, tuple(map(float, levels)))
    if use_x:
        key += (np.ascontiguousarray(x, dtype=float).tobytes(),)
    return model.cache.get_or_compute(key, compute)
