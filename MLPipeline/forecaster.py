"""GPForecaster: a Gaussian-process forecaster for monthly series, with honest intervals.

Two kinds share one API:

* ``kind="level"`` — a GP on the (standardised) level over time in years, plus optional
  regressors with ARD length-scales (see :func:`MLPipeline.kernels.level_kernel`).
* ``kind="difference"`` — a GP on month-over-month differences (the "residual" model);
  forecasts are integrated back to levels with the full predictive covariance, so the
  interval widens with the horizon as the uncertainties of the steps accumulate.

Hyperparameters are fitted by MAP (likelihood x log-normal priors, one L-BFGS start at the
prior medians), see :mod:`MLPipeline.gp`.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from MLPipeline.config import KINDS, MIN_MONTHS, MONTH_FREQ, SEASON_LENGTH
from MLPipeline.gp import MAPGaussianProcessRegressor
from MLPipeline.kernels import difference_kernel, level_kernel
from MLPipeline.months import format_month, month_ordinal, parse_month


def level_label(level: float) -> str:
    """Column suffix for an interval level: 80 -> '80', 97.5 -> '97.5'."""
    return f"{float(level):g}"


def interval_columns(levels: Iterable[float]) -> list[str]:
    """``['mean', 'std', 'lower_80', 'upper_80', ...]`` for the given levels."""
    cols = ["mean", "std"]
    for lv in levels:
        cols += [f"lower_{level_label(lv)}", f"upper_{level_label(lv)}"]
    return cols


def check_levels(level) -> tuple[float, ...]:
    """Validate interval levels (percent, each strictly between 0 and 100)."""
    values = (level,) if isinstance(level, numbers.Real) else tuple(level)
    if not values:
        raise ValueError("level must name at least one interval level, e.g. level=(80, 95)")
    out = []
    for lv in values:
        if isinstance(lv, bool) or not isinstance(lv, numbers.Real) or not np.isfinite(lv):
            raise ValueError(f"level {lv!r} is not a number; use percentages such as 80 or 95")
        if not 0 < lv < 100:
            raise ValueError(f"level {lv!r} is outside (0, 100); use percentages such as 80 or 95")
        out.append(float(lv))
    return tuple(out)


def _monthly_index(index, what: str) -> pd.DatetimeIndex:
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"{what} must have a monthly DatetimeIndex, got {type(index).__name__}")
    if index.hasnans:
        raise ValueError(f"{what} has missing dates in its index")
    on_start = bool(np.all(index.day == 1))
    on_end = bool(np.all(index.is_month_end))
    if not (on_start or on_end) or not np.all(index.normalize() == index):
        raise ValueError(f"{what} index is not monthly: use month-start or month-end dates")
    months = pd.DatetimeIndex(index.to_period("M").to_timestamp(), name="month")
    ordinals = np.array([month_ordinal(m) for m in months])
    steps = np.diff(ordinals)
    if len(steps) and not np.all(steps == 1):
        bad = int(np.flatnonzero(steps != 1)[0])
        raise ValueError(
            f"{what} index is not consecutive monthly: {format_month(months[bad])} is followed by "
            f"{format_month(months[bad + 1])}; sort it and fill missing months"
        )
    return pd.DatetimeIndex(months, freq=MONTH_FREQ, name="month")


def _finite_values(values: np.ndarray, index: pd.DatetimeIndex, what: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(len(index), -1).any(axis=1))[0])
        raise ValueError(
            f"{what} has {int(bad.sum())} missing or non-finite value(s), first at {format_month(index[first])}"
        )


def _as_months(months) -> pd.DatetimeIndex:
    if isinstance(months, str | pd.Timestamp) or not isinstance(months, Iterable):
        months = [months]
    parsed = [parse_month(m) for m in months]
    if not parsed:
        raise ValueError("months is empty: pass at least one month")
    return pd.DatetimeIndex(parsed, name="month")


class GPForecaster:
    """Gaussian-process forecaster for one monthly series.

    Parameters
    ----------
    kind : {"level", "difference"}
        Model the level directly, or the month-over-month differences.
    random_state : int
        Seed passed to the optimiser (fits are deterministic for a fixed seed).
    clip_negative : bool
        For a non-negative training series, clip lower interval bounds at 0.

    Attributes (after ``fit``)
    --------------------------
    y_ : Series, the training series (month-start index, freq MS), in its units.
    regressors_ : tuple of regressor column names used (empty when fitted without X).
    train_start_, train_end_ : first and last training month (month-start Timestamps).
    kernel_ : the fitted scikit-learn kernel; log_marginal_likelihood_ : its log marginal
    likelihood; log_posterior_ : the same plus the log prior.
    """

    def __init__(self, kind: str = "level", *, random_state: int = 0, clip_negative: bool = True):
        self.kind = kind
        self.random_state = random_state
        self.clip_negative = clip_negative

    # ----------------------------------------------------------------- fitting
    def fit(self, y: pd.Series, X: pd.DataFrame | None = None) -> GPForecaster:
        """Fit to ``y`` (Series, monthly DatetimeIndex, >= 24 points) and optional regressors ``X``.

        ``X`` is a DataFrame of regressors on the same index (one column per regressor).
        Returns self.
        """
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not isinstance(y, pd.Series):
            raise ValueError(f"y must be a pandas Series with a monthly DatetimeIndex, got {type(y).__name__}")
        months = _monthly_index(y.index, "y")
        if len(y) < MIN_MONTHS:
            raise ValueError(f"y has {len(y)} months; need at least {MIN_MONTHS} (two full seasons)")
        try:
            values = np.asarray(y, dtype=float)
        except (TypeError, ValueError):
            raise ValueError("y must hold numbers") from None
        _finite_values(values, months, "y")
        self.y_ = pd.Series(values, index=months, name=y.name)
        self.train_start_, self.train_end_ = months[0], months[-1]
        self._t0 = month_ordinal(self.train_start_)
        self._t_center = (len(months) - 1) / (2.0 * SEASON_LENGTH)

        self.regressors_: tuple[str, ...] = ()
        x_train = None
        if X is not None:
            x_train = self._check_X(X, months, what="X", fit=True)
        self.nonnegative_ = bool(np.all(values >= 0))

        if self.kind == "level":
            target, target_months = values, months
            kernel, priors = level_kernel(len(self.regressors_))
        else:
            target, target_months = np.diff(values), months[1:]
            x_train = None if x_train is None else x_train[1:]
            kernel, priors = difference_kernel(len(self.regressors_))
        self.target_mean_ = float(np.mean(target))
        self.target_scale_ = float(np.std(target)) or 1.0
        z = (target - self.target_mean_) / self.target_scale_

        self.gp_ = MAPGaussianProcessRegressor(
            kernel, priors=priors, alpha=1e-8, n_restarts_optimizer=0, random_state=self.random_state
        ).fit(self._design(target_months, x_train), z)
        self.kernel_ = self.gp_.kernel_
        self.log_marginal_likelihood_ = float(self.gp_.log_marginal_likelihood_value_)
        self.log_posterior_ = float(self.gp_.log_posterior_value_)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "gp_"):
            raise ValueError("this GPForecaster is not fitted yet; call fit(y, X) first")

    def _check_X(self, X, months: pd.DatetimeIndex, *, what: str, fit: bool = False) -> np.ndarray:
        if not isinstance(X, pd.DataFrame):
            raise ValueError(f"{what} must be a pandas DataFrame of regressors, got {type(X).__name__}")
        if fit:
            if X.shape[1] == 0:
                raise ValueError("X has no columns; pass X=None to fit without regressors")
            self.regressors_ = tuple(str(c) for c in X.columns)
        missing = [c for c in self.regressors_ if c not in X.columns]
        if missing:
            raise ValueError(f"{what} lacks regressor column(s) {', '.join(missing)}")
        frame = X[list(self.regressors_)]
        index = _monthly_index(frame.index, what) if fit else _as_months(frame.index)
        if fit and not index.equals(months):
            raise ValueError(f"{what} must have the same months as y")
        try:
            values = frame.to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must hold numbers") from None
        _finite_values(values, index, what)
        if fit:
            self.x_mean_ = values.mean(axis=0)
            self.x_scale_ = np.where(values.std(axis=0) > 0, values.std(axis=0), 1.0)
            self.x_fill_ = np.median(values, axis=0)
            return values
        lookup = pd.DataFrame(values, index=index)
        lookup = lookup[~lookup.index.duplicated(keep="last")]
        absent = months.difference(lookup.index)
        if len(absent):
            raise ValueError(f"{what} has no regressor values for month(s) {', '.join(map(format_month, absent[:5]))}")
        return lookup.loc[months].to_numpy()

    def _design(self, months: pd.DatetimeIndex, x: np.ndarray | None) -> np.ndarray:
        t = (np.array([month_ordinal(m) for m in months], dtype=float) - self._t0) / SEASON_LENGTH
        t = (t - self._t_center)[:, None]
        if not self.regressors_:
            return t
        return np.hstack([t, (x - self.x_mean_) / self.x_scale_])

    # -------------------------------------------------------------- prediction
    def predict(self, horizon: int = 12, X_future: pd.DataFrame | None = None, level=(80, 95)) -> pd.DataFrame:
        """Forecast the ``horizon`` months after the training window.

        Returns a DataFrame indexed by month (month-start) with columns mean, std and
        lower_<l>/upper_<l> for each level (percent), in the series' units.
        """
        self._check_fitted()
        if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral) or horizon < 1:
            raise ValueError(f"horizon must be a whole number of months >= 1, got {horizon!r}")
        months = pd.date_range(self.train_end_ + pd.offsets.MonthBegin(1), periods=int(horizon),
                               freq=MONTH_FREQ, name="month")
        if self.regressors_ and X_future is None:
            raise ValueError(
                f"this model was fitted with regressors {', '.join(self.regressors_)}: pass X_future "
                f"with their values for the {horizon} forecast month(s)"
            )
        return self.predict_at(months, X_future, level=level)

    def predict_at(self, months, X: pd.DataFrame | None = None, level=(95,)) -> pd.DataFrame:
        """Predict any months, past or future (strings 'YYYY-MM', dates or a DatetimeIndex).

        In-sample months give the fitted values; for the difference kind a past month is the
        previous observed month plus the predicted change. ``X`` (regressors, indexed by month)
        is required for the requested months when the model uses regressors; for the
        difference kind, months on the path that ``X`` does not cover use the training median.
        Rows come back in the order asked. Same columns as :meth:`predict`.
        """
        self._check_fitted()
        levels = check_levels(level)
        months = _as_months(months)
        x = None
        if self.regressors_:
            if X is None:
                raise ValueError(
                    f"this model was fitted with regressors {', '.join(self.regressors_)}: pass X with their values"
                )
            x = self._check_X(X, months, what="X")
        if self.kind == "level":
            mean, var = self._predict_level(months, x)
        else:
            mean, var = self._predict_difference(months, x, X)
        return self._frame(months, mean, np.sqrt(np.maximum(var, 0.0)), levels)

    def _frame(self, months, mean, std, levels) -> pd.DataFrame:
        data = {"mean": mean, "std": std}
        for lv in levels:
            z = stats.norm.ppf(0.5 + lv / 200.0)
            lower = mean - z * std
            if self.clip_negative and self.nonnegative_:
                lower = np.maximum(lower, 0.0)
            data[f"lower_{level_label(lv)}"] = lower
            data[f"upper_{level_label(lv)}"] = mean + z * std
        return pd.DataFrame(data, index=pd.DatetimeIndex(months, name="month"))

    def _unscale(self, mean, cov_or_var):
        return mean * self.target_scale_ + self.target_mean_, cov_or_var * self.target_scale_**2

    def _predict_level(self, months, x):
        mean, std = self.gp_.predict(self._design(months, x), return_std=True)
        return self._unscale(mean, std**2)

    def _predict_difference(self, months, x, X):
        ordinals = np.array([month_ordinal(m) for m in months])
        first, last = month_ordinal(self.train_start_), month_ordinal(self.train_end_)
        if np.any(ordinals <= first):
            raise ValueError(
                f"the difference model cannot predict {format_month(self.train_start_)} or earlier: "
                "it needs the previous month's observed value"
            )
        mean, var = np.empty(len(months)), np.empty(len(months))
        past = ordinals <= last
        if past.any():
            pm = months[past]
            step_mean, step_std = self.gp_.predict(self._design(pm, None if x is None else x[past]), return_std=True)
            step_mean, step_var = self._unscale(step_mean, step_std**2)
            previous = self.y_.loc[pm - pd.offsets.MonthBegin(1)].to_numpy()
            mean[past], var[past] = previous + step_mean, step_var
        if (~past).any():
            steps = int(ordinals.max() - last)
            path = pd.date_range(self.train_end_ + pd.offsets.MonthBegin(1), periods=steps, freq=MONTH_FREQ)
            x_path = self._path_regressors(path, X) if self.regressors_ else None
            step_mean, step_cov = self.gp_.predict(self._design(path, x_path), return_cov=True)
            step_mean, step_cov = self._unscale(step_mean, step_cov)
            # Level k steps ahead = last value + sum of the k steps: mean cumsum, variance = sum of the
            # top-left k x k block of the step covariance (correlated steps, not just the diagonal).
            path_mean = self.y_.iloc[-1] + np.cumsum(step_mean)
            path_var = np.diag(np.cumsum(np.cumsum(step_cov, axis=0), axis=1))
            pos = ordinals[~past] - last - 1
            mean[~past], var[~past] = path_mean[pos], path_var[pos]
        return mean, var

    def _path_regressors(self, path: pd.DatetimeIndex, X: pd.DataFrame) -> np.ndarray:
        values = np.tile(self.x_fill_, (len(path), 1))
        given = X[list(self.regressors_)].copy()
        given.index = _as_months(given.index)
        given = given[~given.index.duplicated(keep="last")]
        pos = path.get_indexer(given.index)
        keep = pos >= 0
        values[pos[keep]] = given.to_numpy(dtype=float)[keep]
        return values

    # ------------------------------------------------------------------ report
    def describe(self) -> dict:
        """A JSON-friendly summary of the fitted model."""
        self._check_fitted()
        return {
            "kind": self.kind,
            "train_start": format_month(self.train_start_),
            "train_end": format_month(self.train_end_),
            "regressors": list(self.regressors_),
            "kernel": str(self.kernel_),
            "log_marginal_likelihood": self.log_marginal_likelihood_,
            "log_posterior": self.log_posterior_,
        }
