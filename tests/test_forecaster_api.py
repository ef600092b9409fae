"""GPForecaster's public contract shapes, behaviour on known processes, input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import holdout_coverage

from MLPipeline.ensemble import Ensemble
from MLPipeline.forecaster import GPForecaster
from MLPipeline.models import make_model

SIGMA = 4.0


def synthetic(seed: int, n: int = 72, month_end: bool = False):
    """Linear trend + 12-month sine + white noise; returns (observed, noise-free truth)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n + 12)
    truth = 200 + 1.5 * t + 25 * np.sin(2 * np.pi * t / 12)
    freq = "ME" if month_end else "MS"
    index = pd.date_range("2012-01-01", periods=n + 12, freq=freq)
    y = pd.Series(truth + rng.normal(0, SIGMA, n + 12), index=index)
    return y, pd.Series(truth, index=index)


@pytest.mark.parametrize("kind", ["level", "difference"])
def test_forecast_frame_shape(kind):
    y, _ = synthetic(0, month_end=True)
    model = make_model(kind).fit(y.iloc[:72])
    assert model.fit(y.iloc[:72]) is model  # fit returns self
    fc = model.predict(horizon=12, level=(80, 95))
    assert list(fc.columns) == ["mean", "std", "lower_80", "upper_80", "lower_95", "upper_95"]
    assert fc.index[0] == pd.Timestamp("2018-01-01") and len(fc) == 12 and fc.index.name == "month"
    assert (fc["lower_95"] <= fc["lower_80"]).all() and (fc["upper_80"] <= fc["upper_95"]).all()
    assert (fc["std"] > 0).all()
    odd = model.predict_at(["2018-03", "2015-06"], level=(50, 97.5))
    assert list(odd.columns) == ["mean", "std", "lower_50", "upper_50", "lower_97.5", "upper_97.5"]
    assert list(odd.index) == [pd.Timestamp("2018-03-01"), pd.Timestamp("2015-06-01")]
    assert model.y_.index.freqstr == "MS" and model.train_end_ == pd.Timestamp("2017-12-01")
    assert model.log_marginal_likelihood_ == pytest.approx(model.gp_.log_marginal_likelihood())
    assert "ExpSineSquared" in str(model.kernel_)


@pytest.mark.parametrize("kind", ["level", "difference"])
def test_seasonal_shape_is_recovered(kind):
    y, truth = synthetic(1)
    fc = make_model(kind).fit(y.iloc[:72]).predict(12)
    err = fc["mean"].to_numpy() - truth.iloc[72:].to_numpy()
    detrended = fc["mean"].to_numpy() - (200 + 1.5 * np.arange(72, 84))
    season = 25 * np.sin(2 * np.pi * np.arange(72, 84) / 12)
    assert np.corrcoef(detrended, season)[0, 1] > 0.95
    assert np.sqrt(np.mean(err**2)) < 3 * SIGMA


@pytest.mark.parametrize("kind", ["level", "difference"])
def test_interval_coverage_is_near_nominal(kind):
    """30 seeded series x 12 held-out months: 95% and 80% coverage within binomial-ish tolerance."""
    series = (synthetic(100 + seed, n=48)[0] for seed in range(30))
    covered = holdout_coverage(((y.iloc[:48], y.iloc[48:]) for y in series),
                               lambda train, h: make_model(kind).fit(train).predict(h))
    # 360 points, but months of one series are correlated: allow a generous band around nominal.
    assert 0.88 <= covered[95] <= 1.0
    assert 0.68 <= covered[80] <= 0.95


def test_difference_interval_widens_with_horizon():
    y, _ = synthetic(2)
    fc = GPForecaster(kind="difference").fit(y.iloc[:72]).predict(24)
    width = (fc["upper_95"] - fc["lower_95"]).to_numpy()
    assert np.all(np.diff(width) > 0)


@pytest.mark.parametrize("kind", ["level", "difference"])
def test_predict_at_training_months_gives_fitted_values(kind):
    y, truth = synthetic(3)
    model = make_model(kind).fit(y.iloc[:72])
    fitted = model.predict_at(y.index[12:72])["mean"].to_numpy()
    assert np.sqrt(np.mean((fitted - truth.iloc[12:72].to_numpy()) ** 2)) < 1.5 * SIGMA


def test_regressors_are_used_and_required():
    rng = np.random.default_rng(4)
    y, _ = synthetic(4)
    X = pd.DataFrame({"phone_lines": rng.integers(0, 6, len(y)).astype(float),
                      "channels": rng.integers(1, 4, len(y)).astype(float)}, index=y.index)
    y = y + 30 * X["phone_lines"]  # a strong regressor effect the model must pick up
    model = GPForecaster(kind="level").fit(y.iloc[:72], X.iloc[:72])
    assert model.regressors_ == ("phone_lines", "channels")
    with pytest.raises(ValueError, match="X_future"):
        model.predict(12)
    fc = model.predict(12, X_future=X.iloc[72:])
    err = fc["mean"].to_numpy() - y.iloc[72:].to_numpy()
    assert np.sqrt(np.mean(err**2)) < 40  # ignoring phone_lines would cost ~50 (30 x its sd 1.7)
    with pytest.raises(ValueError, match="no regressor values"):
        model.predict_at(["2018-05"], X=X.iloc[72:73])


def test_deterministic_for_a_fixed_seed():
    y, _ = synthetic(5)
    a = Ensemble(random_state=7).fit(y).predict(6)
    b = Ensemble(random_state=7).fit(y).predict(6)
    pd.testing.assert_frame_equal(a, b)


def _series(n=36, **kw):
    return pd.Series(np.arange(n, dtype=float) + 10, index=pd.date_range("2015-01-01", periods=n, freq="MS"), **kw)


@pytest.mark.parametrize("make,match", [
    (lambda: _series(20), "need at least 24"),
    (lambda: _series().where(lambda s: s.index != "2016-03-01"), "missing or non-finite value.*2016-03"),
    (lambda: pd.Series(np.ones(40), index=pd.date_range("2015-01-01", periods=40, freq="D")), "not monthly"),
    (lambda: _series().drop(pd.Timestamp("2016-05-01")), "not consecutive monthly"),
    (lambda: pd.Series(np.ones(30)), "monthly DatetimeIndex"),
    (lambda: np.ones(30), "pandas Series"),
])
def test_fit_rejects_bad_series(make, match):
    with pytest.raises(ValueError, match=match):
        GPForecaster().fit(make())


def test_predict_rejects_bad_arguments():
    model = GPForecaster().fit(_series())
    for horizon in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="horizon"):
            model.predict(horizon)
    for level in ((0,), (100,), (95, 120), ("95",), ()):
        with pytest.raises(ValueError, match="level"):
            model.predict(3, level=level)
    with pytest.raises(ValueError, match="not of the form"):
        model.predict_at(["2019/01"])
    with pytest.raises(ValueError, match="not fitted"):
        GPForecaster().predict(3)
    with pytest.raises(ValueError, match="kind"):
        GPForecaster(kind="residual").fit(_series())
    with pytest.raises(ValueError, match="cannot predict 2015-01"):
        GPForecaster(kind="difference").fit(_series()).predict_at(["2015-01"])
