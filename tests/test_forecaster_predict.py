"""The fast prediction path (month ordinals, numpy look-ups, one frame at the end) against a
straightforward reference built from ``gp_.predict`` month by month: level, difference and the
ensemble, with and without regressors, months repeated, unsorted, past and future."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from MLPipeline.ensemble import Ensemble
from MLPipeline.forecaster import GPForecaster
from MLPipeline.intervals import interval_columns, short_series_factor

N = 40  # long enough for one calibration origin, short enough to fit quickly
LEVELS = (80, 95)


def _ordinal(month: pd.Timestamp) -> int:
    return month.year * 12 + month.month - 1


def _data():
    rng = np.random.default_rng(3)
    t = np.arange(N + 12)
    y = 300 + np.cumsum(rng.normal(1, 4, N + 12)) + 20 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 4, N + 12)
    index = pd.date_range("2016-01-01", periods=N + 12, freq="MS")
    X = pd.DataFrame({"phone_lines": rng.integers(2, 6, N + 12), "channels": rng.integers(1, 4, N + 12)},
                     index=index, dtype=float)
    return pd.Series(y[:N], index=index[:N]), X


@pytest.fixture(scope="module", params=[False, True], ids=["no-regressors", "regressors"])
def fitted(request):
    y, X = _data()
    model = Ensemble().fit(y, X.iloc[:N] if request.param else None)
    return model, X


@pytest.fixture(scope="module")
def gp_models(fitted):
    """The ensemble's GP members and a difference GP on the same data (not an ensemble member)."""
    model, X = fitted
    difference = GPForecaster("difference").fit(model.y_, X.iloc[:N] if model.regressors_ else None)
    return [m for m in model.members_ if isinstance(m, GPForecaster)] + [difference]


def reference(model: GPForecaster, months: list[pd.Timestamp], X: pd.DataFrame) -> np.ndarray:
    """predict_at of one non-ensemble model, one month at a time, from the GP's own predict."""
    end = model.train_end_
    rows = {}  # month -> the last row X gives for it
    for month, row in zip(X.index, X[list(model.regressors_)].to_numpy(dtype=float), strict=True):
        rows[month] = row

    def design(ms, x):
        t = np.array([(_ordinal(m) - _ordinal(end)) / 12 for m in ms])[:, None]
        return t if not model.regressors_ else np.hstack([t, (x - model.x_mean_) / model.x_scale_])

    def unscale(mean, var):
        return mean * model.target_scale_ + model.target_mean_, var * model.target_scale_**2

    observed = model.y_.to_numpy()
    scaled = observed if model._box is None else model._box.forward(observed)
    means, variances = [], []
    for month in months:
        if model.kind == "level":
            m, s = model.gp_.predict(design([month], np.array([rows.get(month)])), return_std=True)
            m, v = unscale(m[0], s[0] ** 2)
        elif month <= end:  # the previous observed month plus the predicted change
            m, s = model.gp_.predict(design([month], np.array([rows.get(month)])), return_std=True)
            m, v = unscale(m[0], s[0] ** 2)
            m += scaled[model.y_.index.get_loc(month) - 1]
        else:  # the last observed month plus the sum of the steps on the path
            path = [end + pd.DateOffset(months=k) for k in range(1, _ordinal(month) - _ordinal(end) + 1)]
            x_path = np.array([rows.get(p, model.x_fill_) for p in path]) if model.regressors_ else None
            m, cov = model.gp_.predict(design(path, x_path), return_cov=True)
            m, cov = unscale(m, cov)
            m, v = scaled[-1] + m.sum(), cov.sum()
        means.append(m)
        variances.append(v)
    mean, std = np.array(means), np.sqrt(np.maximum(variances, 0.0))
    bounds = []
    for lv in LEVELS:
        half = stats.norm.ppf(0.5 + lv / 200) * model._factor(lv) * std
        bounds.append((mean - half, mean + half))
    std = std * model._factor(100 * (stats.norm.cdf(1) - stats.norm.cdf(-1)))
    if model._box is not None:
        mean, std = model._box.mean(mean, std), model._box.std(mean, std)
        bounds = [(model._box.inverse(lo), model._box.inverse(hi)) for lo, hi in bounds]
    columns = [mean, std]
    for lower, upper in bounds:
        columns += [np.maximum(lower, 0.0) if model.clip_negative and model.nonnegative_ else lower, upper]
    return np.column_stack(columns)


def reference_ensemble(model, months, X) -> np.ndarray:
    """Median of the members' means and bounds; std of the equal-weight mixture. The GP members
    come from the reference above, the smoothing member from its own predict_at (tested in
    test_smoothing.py)."""
    parts = [reference(m, months, X) if isinstance(m, GPForecaster)
             else m.predict_at(months, X, level=LEVELS).to_numpy() for m in model.members_]
    out = np.median(parts, axis=0)
    mixture_mean = np.mean([p[:, 0] for p in parts], axis=0)
    second = np.mean([p[:, 1] ** 2 + p[:, 0] ** 2 for p in parts], axis=0)
    out[:, 1] = np.sqrt(np.maximum(second - mixture_mean**2, 0.0))
    if model.short_origins_ is not None:  # a series too short for its calibration's origins
        origins = model.short_origins_
        out[:, 1] *= short_series_factor(origins, 68.27)
        for i, level in enumerate(LEVELS):
            factor = short_series_factor(origins, level)
            out[:, 2 + 2 * i] = np.maximum(out[:, 0] - factor * (out[:, 0] - out[:, 2 + 2 * i]), 0.0)
            out[:, 3 + 2 * i] = out[:, 0] + factor * (out[:, 3 + 2 * i] - out[:, 0])
    return out


def _request(X: pd.DataFrame, end: pd.Timestamp):
    """Months repeated, unsorted, past and future; X unsorted, with a month given twice (the later
    row wins) and without some path months (the difference model fills them with its median)."""
    future = [end + pd.DateOffset(months=k) for k in (4, 1, 9, 4, 2)]
    past = [end, end - pd.DateOffset(months=20), pd.Timestamp("2016-02-01"), end - pd.DateOffset(months=3)]
    months = [future[0], past[1], future[1], past[0], future[2], future[3], past[2], future[4], past[3]]
    wanted = sorted(set(months))
    given = X.loc[wanted].iloc[::-1]
    repeat = X.loc[[future[1]]] * 3 + 1  # a later, different row for one month
    return months, pd.concat([given, repeat])


def test_gp_models_match_the_reference(fitted, gp_models):
    model, X = fitted
    months, given = _request(X, model.train_end_)
    assert [(m.kind, m.transform) for m in gp_models] == [("level", None), ("level", "boxcox"), ("difference", None)]
    for member in gp_models:
        got = member.predict_at([m.strftime("%Y-%m") for m in months], given, level=LEVELS)
        assert list(got.columns) == interval_columns(LEVELS)
        assert list(got.index) == months and got.index.name == "month"
        np.testing.assert_allclose(got.to_numpy(), reference(member, months, given), rtol=1e-9, atol=0)


def test_ensemble_matches_the_reference(fitted):
    model, X = fitted
    months, given = _request(X, model.train_end_)
    got = model.predict_at(pd.DatetimeIndex(months), given, level=LEVELS)
    assert list(got.index) == months
    np.testing.assert_allclose(got.to_numpy(), reference_ensemble(model, months, given), rtol=1e-9, atol=0)


def test_the_request_leaves_path_months_out():
    """The difference model's path months the caller did not give are really filled (the reference
    check of the difference GP is not a no-op)."""
    y, X = _data()
    months, given = _request(X, y.index[-1])
    path = pd.date_range(y.index[-1] + pd.offsets.MonthBegin(1), periods=9, freq="MS")
    assert max(months) == path[-1] and not set(path) <= set(given.index)


def test_cached_constants_follow_a_refit_and_stay_out_of_pickles(fitted):
    model, X = fitted
    months, given = _request(X, model.train_end_)
    member = model.members_[0]  # the calibrated level model
    before = member.predict_at(months, given, level=LEVELS)
    assert "_prediction_constants" in member.__dict__
    copy = pickle.loads(pickle.dumps(member))
    assert "_prediction_constants" not in copy.__dict__
    np.testing.assert_array_equal(copy.predict_at(months, given, level=LEVELS).to_numpy(), before.to_numpy())
    refit = pickle.loads(pickle.dumps(member))
    refit.predict_at(months, given, level=LEVELS)
    y, _ = _data()
    regressors = X.iloc[: N - 12] if member.regressors_ else None
    refit.fit(y.iloc[: N - 12] * 2, regressors)  # a different series: every constant changes
    fresh = GPForecaster("level", calibrate=True).fit(y.iloc[: N - 12] * 2, regressors)
    np.testing.assert_array_equal(refit.predict_at(months[:3], given, level=LEVELS).to_numpy(),
                                  fresh.predict_at(months[:3], given, level=LEVELS).to_numpy())
