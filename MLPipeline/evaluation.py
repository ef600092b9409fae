"""Forecast accuracy metrics and backtests shared by Engine.py, the service and bench/.

Conventions: sMAPE as in the M3 competition (percent, 0..200); MASE and MSIS scaled by the
in-sample seasonal-naive MAE with m = 12; MSIS at alpha = 0.05 as in M4; coverage is the
fraction of actuals inside the interval.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from MLPipeline.config import DEFAULT_LEVELS, SEASON_LENGTH
from MLPipeline.intervals import level_label


def _arrays(*values):
    return [np.asarray(v, dtype=float) for v in values]


def mae(actual, forecast) -> float:
    a, f = _arrays(actual, forecast)
    return float(np.mean(np.abs(a - f)))


def rmse(actual, forecast) -> float:
    a, f = _arrays(actual, forecast)
    return float(np.sqrt(np.mean((a - f) ** 2)))


def mape(actual, forecast) -> float:
    """Mean absolute percentage error (percent); months with a zero actual are skipped."""
    a, f = _arrays(actual, forecast)
    keep = a != 0
    if not keep.any():
        return float("nan")
    return float(100.0 * np.mean(np.abs((a[keep] - f[keep]) / a[keep])))


def smape(actual, forecast) -> float:
    """Symmetric MAPE as in M3 (percent, 0..200); a month where both are 0 counts as 0."""
    a, f = _arrays(actual, forecast)
    denom = np.abs(a) + np.abs(f)
    terms = np.divide(2.0 * np.abs(f - a), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(100.0 * np.mean(terms))


def seasonal_naive_scale(insample, m: int = SEASON_LENGTH) -> float:
    """In-sample MAE of the seasonal-naive forecast (lag ``m``; lag 1 if the series is too short)."""
    y = np.asarray(insample, dtype=float)
    lag = m if len(y) > m else 1
    scale = float(np.mean(np.abs(y[lag:] - y[:-lag])))
    return scale if scale > 0 else float("nan")


def mase(actual, forecast, insample, m: int = SEASON_LENGTH) -> float:
    return mae(actual, forecast) / seasonal_naive_scale(insample, m)


def msis(actual, lower, upper, insample, alpha: float = 0.05, m: int = SEASON_LENGTH) -> float:
    """Mean scaled interval score of the (1 - alpha) interval [lower, upper]."""
    a, lo, hi = _arrays(actual, lower, upper)
    score = (hi - lo) + (2.0 / alpha) * (lo - a) * (a < lo) + (2.0 / alpha) * (a - hi) * (a > hi)
    return float(np.mean(score)) / seasonal_naive_scale(insample, m)


def coverage(actual, lower, upper) -> float:
    a, lo, hi = _arrays(actual, lower, upper)
    return float(np.mean((a >= lo) & (a <= hi)))


def _defined(metrics: dict[str, float]) -> dict[str, float | None]:
    """JSON has no NaN: undefined figures (the MASE of a series that never changes) become None."""
    return {k: (float(v) if np.isfinite(v) else None) for k, v in metrics.items()}


def forecast_metrics(actual, forecast: pd.DataFrame, insample, levels=DEFAULT_LEVELS,
                     season: int = SEASON_LENGTH) -> dict[str, float | None]:
    """All point and interval metrics of one forecast frame (columns mean, lower_<l>, upper_<l>);
    None where a figure is undefined (a scale of zero). MASE and MSIS are scaled by the in-sample
    seasonal-naive error at lag ``season``."""
    actual = np.asarray(actual, dtype=float)
    mean = forecast["mean"].to_numpy()
    out = {
        "mae": mae(actual, mean),
        "rmse": rmse(actual, mean),
        "mape": mape(actual, mean),
        "smape": smape(actual, mean),
        "mase": mase(actual, mean, insample, m=season),
    }
    for lv in levels:
        lab = level_label(lv)
        lo, hi = forecast[f"lower_{lab}"].to_numpy(), forecast[f"upper_{lab}"].to_numpy()
        out[f"coverage_{lab}"] = coverage(actual, lo, hi)
        if lab == "95":
            out["msis"] = msis(actual, lo, hi, insample, alpha=0.05, m=season)
    return _defined(out)


def rolling_origin(
    y: pd.Series,
    fit_predict: Callable[[pd.Series, pd.DataFrame | None, int, pd.DataFrame | None], pd.DataFrame],
    *,
    origins: list[int],
    horizon: int = 12,
    X: pd.DataFrame | None = None,
    levels=DEFAULT_LEVELS,
) -> list[dict]:
    """Rolling-origin evaluation: for each origin ``o``, train on ``y[:o]``, forecast ``horizon``.

    ``fit_predict(y_train, X_train, horizon, X_future)`` returns a forecast frame. Returns one
    dict per origin with the origin's first forecast month and :func:`forecast_metrics`.
    """
    results = []
    for origin in origins:
        if origin < 1 or origin + horizon > len(y):
            raise ValueError(f"origin {origin} with horizon {horizon} does not fit a series of {len(y)}")
        y_train, y_test = y.iloc[:origin], y.iloc[origin : origin + horizon]
        x_train = None if X is None else X.iloc[:origin]
        x_future = None if X is None else X.iloc[origin : origin + horizon]
        forecast = fit_predict(y_train, x_train, horizon, x_future)
        metrics = forecast_metrics(y_test.to_numpy(), forecast, y_train.to_numpy(), levels)
        results.append({"origin": str(y_test.index[0].date()), **metrics})
    return results


def backtest_origins(n: int, horizon: int = 12, folds: int = 2, min_train: int = 24) -> list[int]:
    """Origins for a training-only backtest: the last ``folds`` non-overlapping windows of ``horizon``."""
    origins = [n - horizon * k for k in range(folds, 0, -1)]
    return [o for o in origins if o >= min_train]


#: The figures a run is summarised by (``runs list``, ``GET /models``, experiment tracking).
SUMMARY_METRICS = ("mase", "smape", "mape", "coverage_95")


def holdout_summary(manifest: dict) -> dict[str, float | None]:
    """Mean holdout figures over the run's series, each scored with the kind it serves."""
    preferred = {entry["id"]: entry["preferred"] for entry in manifest.get("series", [])}
    metrics = manifest.get("metrics", {})
    out = {}
    for name in SUMMARY_METRICS:
        values = [metrics.get(sid, {}).get(kind, {}).get(name) for sid, kind in preferred.items()]
        values = [v for v in values if v is not None and np.isfinite(v)]
        out[name] = float(np.mean(values)) if values else None
    return out
