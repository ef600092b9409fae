"""Exponential-smoothing ensemble members behind GPForecaster's prediction API.

* :class:`DampedETS` — ETS(M,Ad,M): multiplicative error, additive damped trend, multiplicative
  12-month season, fitted by maximum likelihood with statsmodels' ``ETSModel``. A series with a
  value <= 0 gets ETS(A,Ad,A) (multiplicative components need a positive series).
* :class:`Theta` — the Theta method (Assimakopoulos & Nikolopoulos 2000) as simple exponential
  smoothing with drift (Hyndman & Billah 2003): classical seasonal decomposition when the series
  is seasonal, SES fitted by statsmodels, half the OLS slope as the drift.

On the M3 development subset both were among the best single forecasters, and the ensemble's
median of two GPs and these two beat every other combination measured (docs/benchmarks.md).

Both are univariate: ``fit`` and ``predict_at`` accept regressors ``X`` and ignore them. Past
months give one-step-ahead fitted values with the residual spread; future months the forecast
with its interval. Predictions are deterministic: ETS's multiplicative intervals are quantiles of
sample paths drawn from ``numpy.random.default_rng(random_state)`` in step-major order, so a
month's bounds do not depend on how far ahead the caller asked.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from MLPipeline.config import MONTH_FREQ, SEASON_LENGTH
from MLPipeline.intervals import check_levels, interval_columns
from MLPipeline.months import (
    format_month,
    month_ordinal,
    months_after,
    ordinal_index,
    ordinals_of,
    parse_month,
)

SIMULATED_PATHS = 1000  # sample paths for the intervals of a multiplicative ETS model
#: Theta's seasonality test: ACF at lag 12 against a chi2(1) at 10% (as statsmodels' ThetaModel).
SEASONALITY_CRITICAL = stats.chi2.ppf(0.9, 1)


def _z(level: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 200.0))


class _SmoothingMember:
    """Shared prediction API: ``predict``, ``predict_at`` and the ensemble's array path ``_values``.

    Subclasses implement ``_fit(values)``, ``_insample()`` -> (mean, std) over the training months
    and ``_ahead(steps, levels)`` -> (mean, std, {level: (lower, upper)}) for the given steps after
    it (0 = the month after the window; repeats and any order allowed).
    """

    kind = "smoothing"

    def __init__(self, *, random_state: int = 0, clip_negative: bool = True):
        self.random_state = random_state
        self.clip_negative = clip_negative

    def fit(self, y: pd.Series, X: pd.DataFrame | None = None):
        """Fit to ``y`` (Series on consecutive months, >= 2 seasons). ``X`` is ignored. Returns self."""
        months = pd.date_range(parse_month(y.index[0]), periods=len(y), freq=MONTH_FREQ, name="month")
        values = np.asarray(y, dtype=float)
        self.y_ = pd.Series(values, index=months, name=y.name)
        self.train_start_, self.train_end_ = months[0], months[-1]
        self.nonnegative_ = bool(np.all(values >= 0))
        self.regressors_: tuple[str, ...] = ()  # univariate: any X is ignored
        self._fit(values)
        return self

    def sums_path(self) -> bool:
        """Smoothing models forecast from their state, not by summing regressor-driven steps."""
        return False

    def first_month(self) -> pd.Timestamp:
        """The earliest month :meth:`predict_at` answers: the first training month."""
        return self.train_start_

    def predict(self, horizon: int = 12, X_future: pd.DataFrame | None = None, level=(80, 95)) -> pd.DataFrame:
        """Forecast the ``horizon`` months after the training window (``X_future`` is ignored)."""
        return self.predict_at(months_after(self.train_end_, horizon), X_future, level=level)

    def predict_at(self, months, X: pd.DataFrame | None = None, level=(95,)) -> pd.DataFrame:
        """Predict any months from the first training month on (``X`` is ignored).

        Same columns as GPForecaster.predict: mean, std, lower_<l>/upper_<l>.
        """
        if not hasattr(self, "y_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet; call fit(y) first")
        levels = check_levels(level)
        ordinals = ordinals_of(months)
        return pd.DataFrame(self._values(ordinals, None, X, levels), index=ordinal_index(ordinals),
                            columns=interval_columns(levels))

    def _values(self, months, x, X, levels) -> np.ndarray:
        """(n, 2 + 2 levels) array of mean, std, lower/upper per level, as GPForecaster._values.

        ``months`` are valid months or integer month ordinals; ``x`` and ``X`` are ignored.
        """
        if isinstance(months, np.ndarray) and months.dtype.kind == "i":
            ordinals = months
        else:
            ordinals = np.array([month_ordinal(m) for m in months])
        first, last = month_ordinal(self.train_start_), month_ordinal(self.train_end_)
        if np.any(ordinals < first):
            raise ValueError(f"{type(self).__name__} cannot predict before {format_month(self.train_start_)}")
        past, ahead = ordinals <= last, ordinals - last - 1
        mean, std = np.empty(len(ordinals)), np.empty(len(ordinals))
        bounds = {lv: np.empty((2, len(ordinals))) for lv in levels}
        if past.any():
            fitted, spread = self._insample()
            rows = ordinals[past] - first
            mean[past], std[past] = fitted[rows], spread[rows]
            for lv in levels:
                half = _z(lv) * std[past]
                bounds[lv][:, past] = mean[past] - half, mean[past] + half
        if (~past).any():
            f_mean, f_std, f_bounds = self._ahead(ahead[~past], levels)
            mean[~past], std[~past] = f_mean, f_std
            for lv in levels:
                bounds[lv][:, ~past] = f_bounds[lv]
        columns = [mean, std]
        for lower, upper in bounds.values():
            if self.clip_negative and self.nonnegative_:
                lower = np.maximum(lower, 0.0)
            columns += [lower, upper]
        return np.column_stack(columns)

    def describe(self) -> dict:
        """A JSON-friendly summary of the fitted model."""
        return {"kind": self.kind, "train_start": format_month(self.train_start_),
                "train_end": format_month(self.train_end_), **self._description()}


class DampedETS(_SmoothingMember):
    """Damped-trend ETS for one monthly series, with the prediction API of GPForecaster.

    Parameters
    ----------
    random_state : int
        Seed of the simulated sample paths (intervals are deterministic for a fixed seed).
    clip_negative : bool
        For a non-negative training series, clip lower interval bounds at 0.

    Attributes (after ``fit``)
    --------------------------
    y_ : Series, the training series (month-start index, freq MS).
    train_start_, train_end_ : first and last training month.
    spec_ : ``{"error", "trend", "damped", "seasonal"}`` of the fitted model.
    results_ : the fitted statsmodels ``ETSResults``.
    """

    kind = "damped-ets"

    def _fit(self, values: np.ndarray) -> None:
        from MLPipeline.etsfit import LeanETSModel

        # multiplicative needs a positive series; additive is the fallback if its fit breaks down
        forms = ("mul", "add") if np.all(values > 0) else ("add",)
        for form in forms:
            model = LeanETSModel(self.y_, error=form, trend="add", damped_trend=True, seasonal=form,
                                 seasonal_periods=SEASON_LENGTH)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # convergence chatter; the fit is still the MLE found
                    results = model.fit(disp=False, maxiter=1000)
            except (ValueError, np.linalg.LinAlgError):
                continue
            if np.isfinite(results.fittedvalues).all() and np.isfinite(results.forecast(1)).all():
                break
        else:
            raise ValueError("exponential smoothing could not be fitted to this series")
        self.spec_ = {"error": form, "trend": "add", "damped": True, "seasonal": form}
        self.results_ = results

    def _insample(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.results_.fittedvalues.to_numpy(dtype=float)
        # one-step error spread: sigma is relative to the level for a multiplicative error
        sigma = np.sqrt(float(self.results_.scale))
        return mean, (sigma * np.abs(mean) if self.spec_["error"] == "mul" else np.full_like(mean, sigma))

    def _ahead(self, steps: np.ndarray, levels):
        forecast, paths = self._future(int(steps.max()) + 1)
        paths = paths[steps]  # only the requested months: quantiles of 1,000 paths each are the cost
        bounds = {lv: np.quantile(paths, [0.5 - lv / 200.0, 0.5 + lv / 200.0], axis=1) for lv in levels}
        return forecast[steps], paths.std(axis=1), bounds

    def _future(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Forecast means (steps,) and simulated paths (steps, SIMULATED_PATHS).

        Kept per process and grown on demand (a serving worker simulates once, not per request;
        ~7 ms saved a call): the draws are step-major, so a longer simulation starts with the
        shorter one and cached answers equal fresh ones. Not pickled (see __getstate__).
        """
        cached = self.__dict__.get("_future_cache")
        if cached is None or len(cached[0]) < steps:
            # grow geometrically: a caller walking out one month at a time must not resimulate each time
            n = max(steps, 2 * len(cached[0]) if cached is not None else 0, 5 * SEASON_LENGTH)
            cached = (np.asarray(self.results_.forecast(n), dtype=float), self._paths(n))
            self.__dict__["_future_cache"] = cached
        return cached[0][:steps], cached[1][:steps]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_future_cache", None)  # derived; rebuilt on first prediction
        return state

    def _paths(self, steps: int) -> np.ndarray:
        """(steps, SIMULATED_PATHS) simulated future sample paths (step-major draws: prefix-stable)."""
        rng = np.random.default_rng(self.random_state)
        sims = self.results_.simulate(steps, anchor="end", repetitions=SIMULATED_PATHS, rng=rng)
        return np.asarray(sims, dtype=float).reshape(steps, SIMULATED_PATHS)

    def _description(self) -> dict:
        params = {k: float(v) for k, v in zip(self.results_.param_names, self.results_.params, strict=True)
                  if not k.startswith("initial")}
        return {**self.spec_, "params": params, "aic": float(self.results_.aic)}


class Theta(_SmoothingMember):
    """The Theta method (theta = 2) for one monthly series, with the prediction API of GPForecaster.

    The series is deseasonalised by classical decomposition (multiplicative for a positive series,
    else additive) when its lag-12 autocorrelation is significant; the forecast is the SES forecast
    plus half the OLS trend slope, ``b0 / 2 * (h - 1 + 1/alpha - (1 - alpha)**n / alpha)``, then
    reseasonalised. Interval: the SES-with-drift variance ``sigma**2 * (1 + alpha**2 * (h - 1))``,
    normal bounds. For a positive series the errors are relative (``sigma`` is the RMS of the
    one-step errors divided by the fitted value, so the width grows with the level, as call-centre
    noise does); otherwise absolute. Relative errors gave the ensemble its best interval score on the
    M3 development subset (docs/benchmarks.md); statsmodels' ThetaModel has no in-sample values,
    which the ensemble needs.

    Parameters and attributes as :class:`DampedETS`; after ``fit`` also ``seasonal_`` (the 12
    seasonal indices, first training month first), ``method_`` ("multiplicative", "additive" or
    "none"), ``error_`` ("mul" or "add"), ``alpha_``, ``drift_`` (b0, per month, deseasonalised)
    and ``sigma_`` (relative for ``error_ == "mul"``).
    """

    kind = "theta"

    def _fit(self, values: np.ndarray) -> None:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing
        from statsmodels.tsa.seasonal import seasonal_decompose
        from statsmodels.tsa.stattools import acf

        n = len(values)
        seasonal = n >= 2 * SEASON_LENGTH and np.ptp(values) > 0  # a constant series has no ACF
        if seasonal:
            rho = acf(values, nlags=SEASON_LENGTH, fft=True)
            seasonal = n * rho[-1] ** 2 / np.sum(rho[:-1] ** 2) > SEASONALITY_CRITICAL
        self.method_, self.seasonal_, x = "none", np.ones(SEASON_LENGTH), values
        if seasonal:
            method = "multiplicative" if np.all(values > 0) else "additive"
            season = seasonal_decompose(values, model=method, period=SEASON_LENGTH).seasonal[:SEASON_LENGTH]
            if method == "multiplicative" and season.min() <= 0:
                method = "additive"
                season = seasonal_decompose(values, model=method, period=SEASON_LENGTH).seasonal[:SEASON_LENGTH]
            self.method_, self.seasonal_ = method, np.asarray(season, dtype=float)
            x = self._deseasonalise(values, np.arange(n))
        self.drift_ = float(np.polyfit(np.arange(n, dtype=float), x, 1)[0])
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")  # convergence chatter; a perfect fit's AIC is -inf
            ses = ExponentialSmoothing(x, initial_level=x[0], initialization_method="known").fit()
            self._next_x = float(np.asarray(ses.forecast(1))[0])
        alpha = float(np.clip(ses.params["smoothing_level"], 1e-6, 1.0))
        self.alpha_ = alpha
        # one-step theta forecasts inside the window: SES value + the drift term for t observations
        t = np.arange(n, dtype=float)
        self._fitted_x = np.asarray(ses.fittedvalues, dtype=float) + 0.5 * self.drift_ * (1 - (1 - alpha) ** t) / alpha
        self.error_ = "mul" if np.all(values > 0) and np.all(self._fitted_x > 0) else "add"
        errors = x - self._fitted_x
        if self.error_ == "mul":
            errors = errors / self._fitted_x
        self.sigma_ = float(np.sqrt(np.mean(errors[1:] ** 2))) if n > 1 else 0.0

    def _season(self, positions: np.ndarray) -> np.ndarray:
        """Seasonal indices of months at ``positions`` (0 = the first training month)."""
        return self.seasonal_[positions % SEASON_LENGTH]

    def _deseasonalise(self, values: np.ndarray, positions: np.ndarray) -> np.ndarray:
        if self.method_ == "multiplicative":
            return values / self._season(positions)
        if self.method_ == "additive":
            return values - self._season(positions)
        return values

    def _reseasonalise(self, values: np.ndarray, positions: np.ndarray) -> np.ndarray:
        if self.method_ == "multiplicative":
            return values * self._season(positions)
        if self.method_ == "additive":
            return values + self._season(positions)
        return values

    def _spread(self, x_mean: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """One-step spread on the original scale for deseasonalised values ``x_mean`` at ``positions``."""
        spread = self.sigma_ * np.abs(x_mean) if self.error_ == "mul" else np.full(len(x_mean), self.sigma_)
        if self.method_ == "multiplicative":
            spread = spread * self._season(positions)
        return spread

    def _insample(self) -> tuple[np.ndarray, np.ndarray]:
        positions = np.arange(len(self.y_))
        return self._reseasonalise(self._fitted_x, positions), self._spread(self._fitted_x, positions)

    def _ahead(self, steps: np.ndarray, levels):
        n, alpha = len(self.y_), self.alpha_
        h = np.asarray(steps, dtype=float) + 1
        x_mean = self._next_x + 0.5 * self.drift_ * (h - 1 + (1 - (1 - alpha) ** n) / alpha)
        mean = self._reseasonalise(x_mean, n + steps)
        std = self._spread(x_mean, n + steps) * np.sqrt(1 + alpha**2 * (h - 1))
        bounds = {lv: (mean - _z(lv) * std, mean + _z(lv) * std) for lv in levels}
        return mean, std, bounds

    def _description(self) -> dict:
        return {"seasonal": self.method_, "error": self.error_, "alpha": self.alpha_, "drift": self.drift_,
                "sigma": self.sigma_}


class SeasonalNaive(_SmoothingMember):
    """Each month is the same month a year earlier: the fallback served when a series' models fail.

    In-sample months give the value 12 months before (the first year: itself); the interval is
    normal with the RMS of the seasonal differences, widened by the square root of the number of
    whole years ahead (Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, 5.5). A
    series shorter than two seasons uses the previous month instead (lag 1).
    """

    kind = "seasonal-naive"

    def _fit(self, values: np.ndarray) -> None:
        self.lag_ = SEASON_LENGTH if len(values) > SEASON_LENGTH else 1
        steps = values[self.lag_:] - values[:-self.lag_]
        self.sigma_ = float(np.sqrt(np.mean(steps**2))) if len(steps) else 0.0
        self._values_ = values

    def _insample(self) -> tuple[np.ndarray, np.ndarray]:
        values, lag = self._values_, self.lag_
        mean = np.concatenate([values[:lag], values[:-lag]])
        return mean, np.full(len(values), self.sigma_)

    def _ahead(self, steps: np.ndarray, levels):
        values, lag = self._values_, self.lag_
        steps = np.asarray(steps, dtype=np.int64)
        mean = values[len(values) - lag + steps % lag]
        std = self.sigma_ * np.sqrt(steps // lag + 1.0)
        bounds = {lv: (mean - _z(lv) * std, mean + _z(lv) * std) for lv in levels}
        return mean, std, bounds

    def _description(self) -> dict:
        return {"lag": self.lag_, "sigma": self.sigma_}
