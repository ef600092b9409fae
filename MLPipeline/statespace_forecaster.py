"""StateSpaceForecaster: the state-space GP behind the served-model API, for series of any frequency.

:class:`MLPipeline.statespace.StateSpaceGP` works on numpy arrays (``fit(y, X)``, ``predict(steps)``).
What ``Engine.py`` saves and the service calls speaks periods instead: ``fit`` takes a Series on its
calendar's timestamps (hours, half-hours, days, weeks or months), and ``predict`` / ``predict_at``
return frames indexed by those timestamps with the columns of every served model (``mean``, ``std``,
``lower_<level>`` / ``upper_<level>``), past periods giving fitted values and later ones the forecast.
Periods go to the array model as step positions, so nothing here depends on the frequency except
the seasonal periods the calendar names.

Values are positive counts in a call centre, and the GP's normal intervals are not: lower bounds are
clipped at zero for a series that never went below it (``clip_negative``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from MLPipeline.calendars import Calendar, calendar_for
from MLPipeline.config import MAX_STATESPACE_POINTS
from MLPipeline.frequency import FREQUENCIES
from MLPipeline.intervals import check_levels, interval_columns
from MLPipeline.statespace import StateSpaceGP


class StateSpaceForecaster:
    """A :class:`~MLPipeline.statespace.StateSpaceGP` fitted on a Series of ``frequency`` periods.

    Parameters
    ----------
    frequency : the series' frequency (its seasonal periods follow from it,
        :func:`MLPipeline.frequency.seasonal_periods`).
    harmonics, level_kernel, max_points, optimize : passed to StateSpaceGP.
    clip_negative : clip lower bounds at zero for a series without negative values.

    Attributes (after ``fit``)
    --------------------------
    calendar_ : the :class:`~MLPipeline.calendars.Calendar` of the training index.
    train_start_, train_end_ : first and last training period (Timestamps).
    regressors_ : names of the regressor columns fitted (empty without ``X``).
    model_ : the fitted StateSpaceGP.
    """

    kind = StateSpaceGP.kind

    def __init__(self, frequency: str = "hourly", *, harmonics=None, level_kernel: str = "matern32",
                 max_points: int = MAX_STATESPACE_POINTS, optimize: bool = True, clip_negative: bool = True):
        self.frequency = frequency
        self.harmonics = harmonics
        self.level_kernel = level_kernel
        self.max_points = max_points
        self.optimize = optimize
        self.clip_negative = clip_negative

    def fit(self, y: pd.Series, X: pd.DataFrame | None = None) -> StateSpaceForecaster:
        """Fit on ``y`` (consecutive periods of ``frequency``) and optional regressors ``X`` (same index)."""
        if self.frequency not in FREQUENCIES:
            raise ValueError(f"frequency must be one of {', '.join(FREQUENCIES)}, got {self.frequency!r}")
        if not isinstance(y, pd.Series) or not isinstance(y.index, pd.DatetimeIndex) or not len(y):
            raise ValueError("y must be a non-empty pandas Series on a DatetimeIndex")
        calendar = calendar_for(self.frequency, y.index[0])
        ordinals = calendar.index_ordinals(y.index)
        if len(ordinals) > 1 and not np.all(np.diff(ordinals) == 1):
            bad = int(np.flatnonzero(np.diff(ordinals) != 1)[0])
            raise ValueError(f"y's index is not consecutive {self.frequency} periods: {calendar.label(ordinals[bad])} "
                             f"is followed by {calendar.label(ordinals[bad + 1])}")
        values = np.asarray(y, dtype=float)
        x = None
        self.regressors_: tuple[str, ...] = ()
        if X is not None:
            if not isinstance(X, pd.DataFrame) or len(X) != len(y):
                raise ValueError("X must be a DataFrame with one row per value of y")
            self.regressors_ = tuple(map(str, X.columns))
            x = X.to_numpy(dtype=float)
            # what a path's periods use when the caller gives no value: the last season's median
            self.x_fill_ = np.median(x[-calendar.season:], axis=0)
        self.model_ = StateSpaceGP(calendar.periods, harmonics=self.harmonics,
                                   level_kernel=getattr(self, "level_kernel", "matern32"),  # older pickles
                                   max_points=self.max_points, optimize=self.optimize).fit(values, x)
        self.calendar_ = calendar
        self._start = int(ordinals[0])
        self._end = int(ordinals[-1])
        #: the first period the array model saw (a series longer than max_points drops its oldest)
        self._first = self._start + self.model_.n_dropped_
        self.train_start_, self.train_end_ = calendar.index([self._start, self._end])
        self.nonnegative_ = bool(np.all(values >= 0))
        return self

    def _check_fitted(self) -> Calendar:
        if not hasattr(self, "model_"):
            raise ValueError("this StateSpaceForecaster is not fitted yet; call fit(y) first")
        return self.calendar_

    def sums_path(self) -> bool:
        """Forecasts come from the fitted state, not from summing regressor-driven steps."""
        return False

    def first_month(self) -> pd.Timestamp:
        """The earliest period :meth:`predict_at` answers: the first one fitted (the name is the
        served models' shared API, from when every period was a month)."""
        return self._check_fitted().index([self._first])[0]

    def predict(self, horizon: int = 24, X_future: pd.DataFrame | None = None, level=(80, 95)) -> pd.DataFrame:
        """Forecast the ``horizon`` periods after the training window."""
        calendar = self._check_fitted()
        if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
            raise ValueError(f"horizon must be a whole number of periods >= 1, got {horizon!r}")
        if self.regressors_ and X_future is None:
            raise ValueError(f"this model was fitted with regressors {', '.join(self.regressors_)}: pass X_future "
                             f"with their values for the {horizon} forecast period(s)")
        return self.predict_at(calendar.index(self._end + 1 + np.arange(int(horizon))), X_future, level=level)

    def predict_at(self, periods, X: pd.DataFrame | None = None, level=(95,)) -> pd.DataFrame:
        """Predict any periods from the first fitted one on (a DatetimeIndex, timestamps, labels or
        ordinals), in the order asked. ``X`` (indexed by period) gives the regressors of those
        periods when the model uses them."""
        calendar = self._check_fitted()
        levels = check_levels(level)
        is_ordinals = isinstance(periods, np.ndarray) and periods.dtype.kind == "i"
        ordinals = periods if is_ordinals else calendar.ordinals(periods)
        x = self._lookup_X(X, ordinals) if self.regressors_ else None
        return pd.DataFrame(self._values(ordinals, x, X, levels), index=calendar.index(ordinals),
                            columns=interval_columns(levels))

    def _lookup_X(self, X: pd.DataFrame | None, ordinals: np.ndarray) -> np.ndarray:
        if X is None:
            raise ValueError(f"this model was fitted with regressors {', '.join(self.regressors_)}: pass X with "
                             "their values")
        missing = [name for name in self.regressors_ if name not in X.columns]
        if missing:
            raise ValueError(f"X lacks the regressor column(s) {', '.join(missing)}")
        given = self.calendar_.index_ordinals(pd.DatetimeIndex(X.index))
        rows = {int(o): i for i, o in enumerate(given)}  # the last row of a repeated period wins
        absent = [o for o in ordinals.tolist() if o not in rows]
        if absent:
            raise ValueError(f"X has no row for {self.calendar_.label(absent[0])}")
        return X[list(self.regressors_)].to_numpy(dtype=float)[[rows[o] for o in ordinals.tolist()]]

    def _values(self, ordinals, x, X, levels) -> np.ndarray:
        """(n, 2 + 2 levels) array of :func:`interval_columns` for period ordinals ``ordinals``."""
        calendar = self._check_fitted()
        ordinals = np.asarray(ordinals, dtype=np.int64)
        if np.any(ordinals < self._first):
            raise ValueError(f"this model cannot predict before {calendar.label(self._first)}")
        if self.regressors_ and x is None:
            x = self._lookup_X(X, ordinals)
        found = self.model_.predict_times(ordinals - self._first, x, level=levels)
        columns = [found["mean"], found["std"]]
        for name in interval_columns(levels)[2:]:
            values = found[name]
            if name.startswith("lower_") and self.clip_negative and self.nonnegative_:
                values = np.maximum(values, 0.0)
            columns.append(values)
        return np.column_stack(columns)

    def describe(self) -> dict:
        """A JSON-friendly summary of the fitted model."""
        calendar = self._check_fitted()
        return {"kind": self.kind, "frequency": calendar.frequency, "train_start": calendar.label(self._start),
                "train_end": calendar.label(self._end), "regressors": list(self.regressors_),
                **self.model_.describe()}
