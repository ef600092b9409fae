"""Damped-trend exponential smoothing, an ensemble member behind GPForecaster's prediction API.

ETS(M,Ad,M) — multiplicative error, additive damped trend, multiplicative 12-month season —
fitted by maximum likelihood with statsmodels' ``ETSModel``. On the call-centre rolling origin
it was the best single point forecaster measured (bench/accuracy.py), and averaging it with the
GP members improved both points and intervals. A series with a value <= 0 gets ETS(A,Ad,A)
instead (multiplicative components need a positive series).

Intervals of a multiplicative model have no closed form: they are quantiles of simulated
sample paths. The draws come from ``numpy.random.default_rng(random_state)`` in step-major
order, so predictions are deterministic and a month's bounds do not depend on how far ahead
the caller asked.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from MLPipeline.config import MONTH_FREQ, SEASON_LENGTH
from MLPipeline.months import format_month, month_ordinal, parse_month

SIMULATED_PATHS = 1000  # sample paths for the intervals of a multiplicative model


class DampedETS:
    """Damped-trend ETS for one monthly series, with the prediction API of GPForecaster.

    Parameters
    ----------
    random_state : int
        Seed of the simulated sample paths (intervals are deterministic for a fixed seed).
    clip_negative : bool
        For a non-negative training series, clip lower interval bounds at 0.

    ``fit`` and ``predict_at`` accept regressors ``X`` for API compatibility and ignore them:
    exponential smoothing is univariate.

    Attributes (after ``fit``)
    --------------------------
    y_ : Series, the training series (month-start index, freq MS).
    train_start_, train_end_ : first and last training month.
    spec_ : ``{"error", "trend", "damped", "seasonal"}`` of the fitted model.
    results_ : the fitted statsmodels ``ETSResults``.
    """

    kind = "damped-ets"

    def __init__(self, *, random_state: int = 0, clip_negative: bool = True):
        self.random_state = random_state
        self.clip_negative = clip_negative

    def fit(self, y: pd.Series, X: pd.DataFrame | None = None) -> DampedETS:
        """Fit to ``y`` (Series on consecutive months, >= 2 seasons). ``X`` is ignored."""
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel

        months = pd.date_range(parse_month(y.index[0]), periods=len(y), freq=MONTH_FREQ, name="month")
        values = np.asarray(y, dtype=float)
        self.y_ = pd.Series(values, index=months, name=y.name)
        self.train_start_, self.train_end_ = months[0], months[-1]
        self.nonnegative_ = bool(np.all(values >= 0))
        # multiplicative needs a positive series; additive is the fallback if its fit breaks down
        forms = ("mul", "add") if np.all(values > 0) else ("add",)
        for form in forms:
            model = ETSModel(self.y_, error=form, trend="add", damped_trend=True, seasonal=form,
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
        return self

    def predict(self, horizon: int = 12, X_future: pd.DataFrame | None = None, level=(80, 95)) -> pd.DataFrame:
        """Forecast the ``horizon`` months after the training window (``X_future`` is ignored)."""
        months = pd.date_range(self.train_end_ + pd.offsets.MonthBegin(1), periods=int(horizon),
                               freq=MONTH_FREQ, name="month")
        return self.predict_at(months, X_future, level=level)

    def predict_at(self, months, X: pd.DataFrame | None = None, level=(95,)) -> pd.DataFrame:
        """Predict any months from the first training month on (``X`` is ignored).

        Past months give the one-step-ahead fitted values with the residual spread; future months
        the forecast with simulated (multiplicative) or exact (additive) bounds. Same columns as
        GPForecaster.predict: mean, std, lower_<l>/upper_<l>.
        """
        # imported here: forecaster imports this module for its ensemble
        from MLPipeline.forecaster import _as_months, check_levels, interval_columns

        if not hasattr(self, "results_"):
            raise ValueError("this DampedETS is not fitted yet; call fit(y) first")
        levels = check_levels(level)
        months = _as_months(months)
        return pd.DataFrame(self._values(months, None, X, levels), index=pd.DatetimeIndex(months, name="month"),
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
            raise ValueError(f"exponential smoothing cannot predict before {format_month(self.train_start_)}")
        steps = int(max(ordinals.max() - last, 0))
        past, ahead = ordinals <= last, ordinals - last - 1
        mean, std = np.empty(len(ordinals)), np.empty(len(ordinals))
        bounds = {lv: np.empty((2, len(ordinals))) for lv in levels}
        if past.any():
            mean[past] = self.results_.fittedvalues.to_numpy(dtype=float)[ordinals[past] - first]
            # one-step error spread: sigma is relative to the level for a multiplicative error
            sigma = np.sqrt(float(self.results_.scale))
            std[past] = sigma * np.abs(mean[past]) if self.spec_["error"] == "mul" else sigma
            for lv in levels:
                half = stats.norm.ppf(0.5 + lv / 200.0) * std[past]
                bounds[lv][:, past] = mean[past] - half, mean[past] + half
        if steps:
            forecast, paths = self._future(steps)
            paths = paths[ahead[~past]]
            mean[~past] = forecast[ahead[~past]]
            std[~past] = paths.std(axis=1)
            for lv in levels:
                bounds[lv][:, ~past] = np.quantile(paths, [0.5 - lv / 200.0, 0.5 + lv / 200.0], axis=1)
        columns = [mean, std]
        for lower, upper in bounds.values():
            if self.clip_negative and self.nonnegative_:
                lower = np.maximum(lower, 0.0)
            columns += [lower, upper]
        return np.column_stack(columns)

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

    def describe(self) -> dict:
        """A JSON-friendly summary of the fitted model."""
        params = {k: float(v) for k, v in zip(self.results_.param_names, self.results_.params, strict=True)
                  if not k.startswith("initial")}
        return {"kind": self.kind, "train_start": format_month(self.train_start_),
                "train_end": format_month(self.train_end_), **self.spec_, "params": params,
                "aic": float(self.results_.aic)}

