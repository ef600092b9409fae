"""GPForecaster: a Gaussian-process forecaster for monthly series, with honest intervals.

Two kinds share one API (the ensemble that combines them with smoothing models is its own
estimator, :class:`MLPipeline.ensemble.Ensemble`, over the same member interface):

* ``kind="level"`` — a GP on the (standardised) level over time in years, plus optional
  regressors with ARD length-scales (see :func:`MLPipeline.kernels.level_kernel`).
* ``kind="difference"`` — a GP on month-over-month differences (the "residual" model);
  forecasts are integrated back to levels with the full predictive covariance, so the
  interval widens with the horizon as the uncertainties of the steps accumulate.

Hyperparameters are fitted by MAP (likelihood x log-normal priors, one L-BFGS start at the
prior medians; the calibration refits below start from the full fit's), see :mod:`MLPipeline.gp`.
Two optional steps, both on training data only:

* ``transform="boxcox"`` fits on a Box–Cox scale with Guerrero's lambda (restricted to
  [0, 1]); the mean is back-transformed with the bias adjustment, bounds are back-transformed
  quantiles, so a positive series never gets a negative forecast or bound.
* ``calibrate=True`` widens the intervals by conformal factors: the model is refitted at the
  last three yearly origins inside the training window and the absolute standardised errors
  of those 12-month forecasts give, per level, ``factor = q(|z|, level) / z_level`` (never below 1),
  where q is the split-conformal quantile with the (n + 1) finite-sample correction
  (:func:`MLPipeline.intervals.conformal_quantile`). The plain level GP's own intervals are too
  narrow on real data.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from scipy.linalg import solve_triangular
from sklearn.gaussian_process import GaussianProcessRegressor

from MLPipeline.config import MIN_MONTHS, MONTH_FREQ, SEASON_LENGTH
from MLPipeline.gp import MAPGaussianProcessRegressor, set_theta
from MLPipeline.intervals import check_levels, conformal_quantile, interval_columns, level_label
from MLPipeline.kernels import difference_kernel, level_kernel
from MLPipeline.months import (
    format_month,
    format_ordinal,
    month_ordinal,
    months_after,
    ordinal_index,
    ordinals_of,
)
from MLPipeline.transforms import BoxCox, guerrero_lambda

#: Kinds GPForecaster fits: a GP on the level, a GP on month-over-month differences (the ensemble is
#: its own estimator, MLPipeline.ensemble.Ensemble).
GP_KINDS: tuple[str, ...] = ("level", "difference")
TRANSFORMS: tuple[str | None, ...] = (None, "boxcox")
CALIBRATION_FOLDS = 3  # yearly origins inside the training window for conformal widening
try:  # how scikit-learn stores the Cholesky factor; without it predictions use gp_.predict
    from sklearn.gaussian_process._gpr import GPR_CHOLESKY_LOWER
except ImportError:  # pragma: no cover - another scikit-learn layout
    GPR_CHOLESKY_LOWER = None


def default_calibration(kind: str) -> bool:
    """Whether ``calibrate=None`` widens intervals for ``kind``: the level GP's own are too narrow."""
    return kind == "level"


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


class GPForecaster:
    """Gaussian-process forecaster for one monthly series.

    Parameters
    ----------
    kind : {"level", "difference"}
        Model the level directly or the month-over-month differences (see the module docstring).
    transform : {None, "boxcox"}
        Fit on a Box–Cox scale (Guerrero lambda); ignored with a warning-free fallback to no
        transform when the series has a value <= 0.
    calibrate : bool or None
        Conformal widening of the intervals from a training-only backtest. None = the kind's
        default (True for "level", False for "difference").
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
    likelihood; log_posterior_ : the same plus the log prior. lambda_ : Box–Cox lambda or None.
    calibration_ : dict with the backtest's absolute standardised errors and the factor per level
    (empty when off).
    """

    def __init__(self, kind: str = "level", *, transform: str | None = None, calibrate: bool | None = None,
                 random_state: int = 0, clip_negative: bool = True):
        self.kind = kind
        self.transform = transform
        self.calibrate = calibrate
        self.random_state = random_state
        self.clip_negative = clip_negative

    # ----------------------------------------------------------------- fitting
    def fit(self, y: pd.Series, X: pd.DataFrame | None = None) -> GPForecaster:
        """Fit to ``y`` (Series, monthly DatetimeIndex, >= 24 points) and optional regressors ``X``.

        ``X`` is a DataFrame of regressors on the same index (one column per regressor).
        Returns self.
        """
        return self._fit(y, X)

    def _fit(self, y: pd.Series, X: pd.DataFrame | None = None, start: np.ndarray | None = None) -> GPForecaster:
        """:meth:`fit`, the optimiser starting from the log-hyperparameters ``start`` (a fitted kernel's
        ``theta`` of the same kind and regressors) instead of the prior medians."""
        if self.kind not in GP_KINDS:
            hint = "; the ensemble is MLPipeline.ensemble.Ensemble" if self.kind == "ensemble" else ""
            raise ValueError(f"kind must be one of {', '.join(GP_KINDS)}, got {self.kind!r}{hint}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform must be None or 'boxcox', got {self.transform!r}")
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
        # Time in years, zero at the last training month: the linear trend's intercept is
        # pinned where the forecast starts, so its uncertainty grows with the horizon.
        self._t0 = month_ordinal(self.train_end_)

        self.regressors_: tuple[str, ...] = ()
        x_train = None
        if X is not None:
            x_train = self._check_X(X, months, what="X", fit=True)
        self.nonnegative_ = bool(np.all(values >= 0))
        self.calibration_: dict = {}
        self.lambda_ = None
        self._box = None
        if self.transform == "boxcox" and np.all(values > 0):
            self.lambda_ = guerrero_lambda(values, SEASON_LENGTH)
            self._box = BoxCox(self.lambda_)
        scaled = values if self._box is None else self._box.forward(values)

        if self.kind == "level":
            target, target_months = scaled, months
            kernel, priors = level_kernel(len(self.regressors_))
        else:
            target, target_months = np.diff(scaled), months[1:]
            x_train = None if x_train is None else x_train[1:]
            kernel, priors = difference_kernel(len(self.regressors_))
        self.target_mean_ = float(np.mean(target))
        self.target_scale_ = float(np.std(target)) or 1.0
        z = (target - self.target_mean_) / self.target_scale_

        if start is not None:
            kernel = set_theta(kernel, start, n_features=1 + len(self.regressors_))
        self.gp_ = MAPGaussianProcessRegressor(
            kernel, priors=priors, alpha=1e-8, n_restarts_optimizer=0, random_state=self.random_state
        ).fit(self._design(target_months, x_train), z)
        self.kernel_ = self.gp_.kernel_
        self.log_marginal_likelihood_ = float(self.gp_.log_marginal_likelihood_value_)
        self.log_posterior_ = float(self.gp_.log_posterior_value_)
        self._scaled = pd.Series(scaled, index=months)
        calibrate = default_calibration(self.kind) if self.calibrate is None else bool(self.calibrate)
        if calibrate:
            self.calibration_ = self._conformal(X)
        return self

    def _conformal(self, X) -> dict:
        """Absolute standardised errors of refitted 12-month forecasts at yearly training origins."""
        n, errors = len(self.y_), []
        for k in range(1, CALIBRATION_FOLDS + 1):
            origin = n - SEASON_LENGTH * k
            if origin < MIN_MONTHS:
                break
            horizon = min(SEASON_LENGTH, n - origin)
            sub = GPForecaster(self.kind, transform=self.transform, calibrate=False,
                               random_state=self.random_state, clip_negative=self.clip_negative)
            # Started from the full window's hyperparameters, a refit on a year or three fewer
            # months converges in fewer steps than from the prior medians, and to nearly the same
            # place (the priors keep the posterior's mode where the full fit found it).
            sub._fit(self.y_.iloc[:origin], None if X is None else X.iloc[:origin], start=self.kernel_.theta)
            future = self.y_.index[origin:origin + horizon]
            x = None if X is None else sub._check_X(X.iloc[origin:origin + horizon], future, what="X")
            mean, var = sub._latent(future, x, X)
            actual = self.y_.iloc[origin:origin + horizon].to_numpy()
            actual = actual if sub._box is None else sub._box.forward(actual)
            errors.append(np.abs(actual - mean) / np.sqrt(np.maximum(var, 1e-12)))
        if not errors:
            return {}
        return {"abs_z": np.concatenate(errors), "origins": len(errors)}

    def _factor(self, level: float) -> float:
        """Conformal widening factor for one level (1 when not calibrated)."""
        abs_z = self.calibration_.get("abs_z")
        if abs_z is None or not len(abs_z):
            return 1.0
        z = stats.norm.ppf(0.5 + level / 200.0)
        if not z > 0:  # a level so close to 0 that its interval has no width: nothing to widen
            return 1.0
        return max(1.0, conformal_quantile(abs_z, level) / z)

    def _constants(self) -> dict:
        """Per-model constants of the prediction path, computed on first use.

        Kept outside fit (and out of pickles, see __getstate__) so models pickled before it
        existed work; rebuilt whenever a refit replaced the GP, the calibration or the series.
        """
        key = (self.gp_, self.calibration_, getattr(self, "_scaled", None))
        found = self.__dict__.get("_prediction_constants")
        if found is not None and all(a is b for a, b in zip(found["key"], key, strict=True)):
            return found
        found = {
            "key": key,
            "half": {},  # level -> normal quantile x calibration factor
            "sigma": self._factor(100 * (stats.norm.cdf(1) - stats.norm.cdf(-1))),
            "first": month_ordinal(self.train_start_),
            "last": month_ordinal(self.train_end_),
            "scaled": None if key[2] is None else key[2].to_numpy(dtype=float),
        }
        self.__dict__["_prediction_constants"] = found
        return found

    def _half_width(self, level: float) -> float:
        """Half-width of the ``level`` % interval in standard deviations (calibrated)."""
        half = self._constants()["half"]
        if level not in half:
            half[level] = stats.norm.ppf(0.5 + level / 200.0) * self._factor(level)
        return half[level]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_prediction_constants", None)  # derived; rebuilt on first prediction
        return state

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
        if not fit:
            return self._lookup_X(X, ordinals_of(months), what)
        frame = X[list(self.regressors_)]
        index = _monthly_index(frame.index, what)
        if not index.equals(months):
            raise ValueError(f"{what} must have the same months as y")
        try:
            values = frame.to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must hold numbers") from None
        _finite_values(values, index, what)
        self.x_mean_ = values.mean(axis=0)
        self.x_scale_ = np.where(values.std(axis=0) > 0, values.std(axis=0), 1.0)
        self.x_fill_ = np.median(values, axis=0)
        return values

    def _regressor_values(self, X: pd.DataFrame, what: str) -> tuple[np.ndarray, np.ndarray]:
        """``X``'s month ordinals and its regressor columns as floats (validated, not yet looked up)."""
        columns = list(self.regressors_)
        frame = X if list(X.columns) == columns else X[columns]
        ordinals = ordinals_of(frame.index)
        try:
            values = frame.to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must hold numbers") from None
        if not np.isfinite(values).all():
            _finite_values(values, ordinal_index(ordinals), what)
        return ordinals, values

    def _lookup_X(self, X: pd.DataFrame, months: np.ndarray, what: str) -> np.ndarray:
        """Regressor rows for ``months`` (ordinals) from ``X``; a month given twice: the last row."""
        ordinals, values = self._regressor_values(X, what)
        row = {month: i for i, month in enumerate(ordinals.tolist())}  # later rows win
        rows = [row.get(month, -1) for month in months.tolist()]
        if -1 in rows:
            absent = sorted({month for month, i in zip(months.tolist(), rows, strict=True) if i < 0})
            raise ValueError(f"{what} has no regressor values for month(s) {', '.join(map(format_ordinal, absent[:5]))}")
        return values[rows]

    def _design(self, months, x: np.ndarray | None) -> np.ndarray:
        """GP inputs for ``months`` (a DatetimeIndex or month ordinals) and regressor rows ``x``."""
        t = ((ordinals_of(months).astype(float) - self._t0) / SEASON_LENGTH)[:, None]
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
        months = months_after(self.train_end_, horizon)
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
        months = ordinals_of(months)
        x = None
        if self.regressors_:
            if X is None:
                raise ValueError(
                    f"this model was fitted with regressors {', '.join(self.regressors_)}: pass X with their values"
                )
            x = self._check_X(X, months, what="X")
        values = self._values(months, x, X, levels)
        # One frame at the end: everything before works on arrays and month ordinals.
        return pd.DataFrame(values, index=ordinal_index(months), columns=interval_columns(levels))

    def _latent(self, months, x, X):
        """Mean and variance on the model's (possibly Box–Cox) scale."""
        if self.kind == "level":
            return self._predict_level(months, x)
        return self._predict_difference(months, x, X)

    def _values(self, months, x, X, levels) -> np.ndarray:
        """Columns of :func:`interval_columns` (levels) for one model, as an (n, 2 + 2 levels) array."""
        mean, var = self._latent(months, x, X)
        return self._bounds(mean, np.sqrt(np.maximum(var, 0.0)), levels)

    def _bounds(self, mean, std, levels) -> np.ndarray:
        """Mean, std and bounds on the original scale from the model-scale mean and std."""
        bounds = []
        for lv in levels:
            half = self._half_width(lv) * std
            bounds.append((mean - half, mean + half))
        # The std column is the 1-sigma width after calibration (the factor at 68.27%).
        std = std * self._constants()["sigma"]
        if self._box is not None:
            # Bias-adjusted mean and delta-method std on the original scale; bounds are quantiles.
            mean, std = self._box.mean(mean, std), self._box.std(mean, std)
            bounds = [(self._box.inverse(lo), self._box.inverse(hi)) for lo, hi in bounds]
        columns = [mean, std]
        for lower, upper in bounds:
            if self.clip_negative and self.nonnegative_:
                lower = np.maximum(lower, 0.0)
            columns += [lower, upper]
        return np.column_stack(columns)

    def _frame(self, months, mean, std, levels) -> pd.DataFrame:
        """:meth:`_bounds` as a DataFrame indexed by month."""
        return pd.DataFrame(self._bounds(mean, std, levels), index=ordinal_index(ordinals_of(months)),
                            columns=interval_columns(levels))

    def _unscale(self, mean, cov_or_var):
        return mean * self.target_scale_ + self.target_mean_, cov_or_var * self.target_scale_**2

    def _gp_predict(self, design: np.ndarray, *, cov: bool = False):
        """``gp_.predict(design, return_std=True)`` (or ``return_cov=True``) without scikit-learn's
        per-call input validation, a third of a small call: the same arithmetic on the same fitted
        state, so the same numbers (tests/test_forecaster_predict.py). Any other regressor class,
        or a scikit-learn without that state, goes through ``predict`` itself."""
        gp = self.gp_
        plain = type(gp).predict is GaussianProcessRegressor.predict and GPR_CHOLESKY_LOWER is not None
        if not (plain and all(hasattr(gp, a) for a in ("L_", "alpha_", "_y_train_std", "_y_train_mean"))):
            return gp.predict(design, return_std=not cov, return_cov=cov)
        k_trans = gp.kernel_(design, gp.X_train_)
        mean = gp._y_train_std * (k_trans @ gp.alpha_) + gp._y_train_mean
        if mean.ndim > 1 and mean.shape[1] == 1:
            mean = np.squeeze(mean, axis=1)
        v = solve_triangular(gp.L_, k_trans.T, lower=GPR_CHOLESKY_LOWER, check_finite=False)
        if cov:
            covariance = gp.kernel_(design) - v.T @ v
            covariance = np.outer(covariance, gp._y_train_std**2).reshape(*covariance.shape, -1)
            return mean, np.squeeze(covariance, axis=2) if covariance.shape[2] == 1 else covariance
        var = gp.kernel_.diag(design).copy()
        var -= np.einsum("ij,ji->i", v.T, v)
        if np.any(var < 0):
            warnings.warn("Predicted variances smaller than 0. Setting those variances to 0.", stacklevel=2)
            var[var < 0] = 0.0
        var = np.outer(var, gp._y_train_std**2).reshape(*var.shape, -1)
        return mean, np.sqrt(np.squeeze(var, axis=1) if var.shape[1] == 1 else var)

    def _predict_level(self, months, x):
        mean, std = self._gp_predict(self._design(months, x))
        return self._unscale(mean, std**2)

    def _predict_difference(self, months, x, X):
        ordinals = ordinals_of(months)
        constants = self._constants()
        first, last, scaled = constants["first"], constants["last"], constants["scaled"]
        if np.any(ordinals <= first):
            raise ValueError(
                f"the difference model cannot predict {format_month(self.train_start_)} or earlier: "
                "it needs the previous month's observed value"
            )
        mean, var = np.empty(len(ordinals)), np.empty(len(ordinals))
        past = ordinals <= last
        if past.any():
            pm = ordinals[past]
            step_mean, step_std = self._gp_predict(self._design(pm, None if x is None else x[past]))
            step_mean, step_var = self._unscale(step_mean, step_std**2)
            previous = scaled[pm - 1 - first]
            mean[past], var[past] = previous + step_mean, step_var
        if (~past).any():
            steps = int(ordinals.max() - last)
            path = np.arange(last + 1, last + 1 + steps, dtype=np.int64)
            x_path = self._path_regressors(path, X) if self.regressors_ else None
            step_mean, step_cov = self._gp_predict(self._design(path, x_path), cov=True)
            step_mean, step_cov = self._unscale(step_mean, step_cov)
            # Level k steps ahead = last value + sum of the k steps: mean cumsum, variance = sum of the
            # top-left k x k block of the step covariance (correlated steps, not just the diagonal).
            path_mean = scaled[-1] + np.cumsum(step_mean)
            path_var = np.diag(np.cumsum(np.cumsum(step_cov, axis=0), axis=1))
            pos = ordinals[~past] - last - 1
            mean[~past], var[~past] = path_mean[pos], path_var[pos]
        return mean, var

    def _path_regressors(self, path, X: pd.DataFrame) -> np.ndarray:
        """Regressors for the consecutive ``path`` months: X's rows (the last of a repeated month),
        else the training median."""
        path = ordinals_of(path)
        values = np.tile(self.x_fill_, (len(path), 1))
        ordinals, given = self._regressor_values(X, "X")
        last_rows = len(ordinals) - 1 - np.unique(ordinals[::-1], return_index=True)[1]
        pos = ordinals[last_rows] - path[0]
        keep = (pos >= 0) & (pos < len(path))
        values[pos[keep]] = given[last_rows[keep]]
        return values

    def sums_path(self) -> bool:
        """Whether predictions sum monthly steps from the last observed value: a difference GP,
        (so regressors of the months on the way matter)."""
        return self.kind == "difference"

    def first_month(self) -> pd.Timestamp:
        """The earliest month :meth:`predict_at` answers (month-start Timestamp).

        A model that sums differences needs the previous observed month, so it starts one month
        after the training window does.
        """
        self._check_fitted()
        return self.train_start_ + pd.offsets.MonthBegin(1 if self.sums_path() else 0)

    # ------------------------------------------------------------------ report
    def describe(self) -> dict:
        """A JSON-friendly summary of the fitted model."""
        self._check_fitted()
        return {
            "kind": self.kind,
            "train_start": format_month(self.train_start_),
            "train_end": format_month(self.train_end_),
            "regressors": list(self.regressors_),
            "transform": self.transform,
            "boxcox_lambda": self.lambda_,
            "calibration_factors": {level_label(lv): self._factor(lv) for lv in (80, 95)},
            "kernel": str(self.kernel_),
            "log_marginal_likelihood": self.log_marginal_likelihood_,
            "log_posterior": self.log_posterior_,
        }
