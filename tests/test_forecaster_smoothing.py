"""The damped-trend exponential-smoothing ensemble member (MLPipeline/smoothing.py, issue 4)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from MLPipeline.forecaster import GPForecaster
from MLPipeline.smoothing import DampedETS


def ets_series(seed: int, n: int, *, sigma: float = 0.04) -> pd.Series:
    """A sample path of ETS(M,Ad,M): the process the member assumes, so its intervals should hold."""
    rng = np.random.default_rng(seed)
    level, trend, phi = 500.0, 3.0, 0.95
    season = list(1 + 0.2 * np.sin(2 * np.pi * np.arange(12) / 12))
    alpha, beta, gamma = 0.3, 0.05, 0.1
    out = []
    for _ in range(n):
        s = season.pop(0)
        mu = (level + phi * trend) * s
        eps = rng.normal(0, sigma)
        out.append(mu * (1 + eps))
        level, trend = ((level + phi * trend) * (1 + alpha * eps), phi * trend + beta * (level + phi * trend) * eps)
        season.append(s * (1 + gamma * eps))
    return pd.Series(out, index=pd.date_range("2010-01-01", periods=n, freq="MS"))


def test_fit_and_predict_are_deterministic_and_pickle():
    y = ets_series(0, 72)
    first = DampedETS(random_state=5).fit(y)
    assert first.fit(y) is first  # fit returns self
    fc = first.predict(12, level=(80, 95))
    pd.testing.assert_frame_equal(fc, DampedETS(random_state=5).fit(y).predict(12, level=(80, 95)))
    pd.testing.assert_frame_equal(pickle.loads(pickle.dumps(first)).predict(12, level=(80, 95)), fc)
    assert list(fc.columns) == ["mean", "std", "lower_80", "upper_80", "lower_95", "upper_95"]
    assert fc.index[0] == pd.Timestamp("2016-01-01") and fc.index.name == "month"
    # a month's bounds do not depend on how far ahead the caller asked (step-major draws)
    pd.testing.assert_frame_equal(first.predict(24, level=(80, 95)).iloc[:12], fc)
    assert first.spec_ == {"error": "mul", "trend": "add", "damped": True, "seasonal": "mul"}


def test_forecasts_are_finite_ordered_and_non_negative_for_a_positive_series():
    y = ets_series(1, 48, sigma=0.15)  # noisy: simulated multiplicative paths spread widely
    fc = DampedETS().fit(y).predict(18, level=(50, 80, 95, 99))
    assert np.isfinite(fc.to_numpy()).all()
    assert (fc["lower_99"] >= 0).all()
    assert (fc["lower_99"] <= fc["lower_95"]).all() and (fc["lower_95"] <= fc["lower_80"]).all()
    assert (fc["lower_50"] <= fc["upper_50"]).all() and (fc["upper_95"] <= fc["upper_99"]).all()
    assert (fc["std"] > 0).all()


def test_interval_coverage_on_simulated_data():
    """20 ETS(M,Ad,M) series x 12 held-out months: coverage near nominal (dependent months: wide band)."""
    inside95, inside80 = [], []
    for seed in range(20):
        y = ets_series(100 + seed, 72)
        fc = DampedETS().fit(y.iloc[:60]).predict(12)
        actual = y.iloc[60:].to_numpy()
        inside95 += list((actual >= fc["lower_95"]) & (actual <= fc["upper_95"]))
        inside80 += list((actual >= fc["lower_80"]) & (actual <= fc["upper_80"]))
    # measured 0.846 / 0.688: ETS intervals ignore the uncertainty of the estimated parameters,
    # so they run a little narrow even on their own process; one-step-width bounds would give ~0.4.
    assert 0.80 <= np.mean(inside95) <= 1.0
    assert 0.60 <= np.mean(inside80) <= 0.92


def test_predict_at_past_months_gives_one_step_fitted_values():
    y = ets_series(2, 60)
    model = DampedETS().fit(y)
    past = model.predict_at(y.index[:24])
    np.testing.assert_allclose(past["mean"], model.results_.fittedvalues.iloc[:24])
    assert (past["lower_95"] < past["mean"]).all() and (past["mean"] < past["upper_95"]).all()
    mixed = model.predict_at(["2015-06", "2011-03", "2014-12"])  # future, past, last training month
    assert list(mixed.index) == [pd.Timestamp(m) for m in ("2015-06-01", "2011-03-01", "2014-12-01")]
    with pytest.raises(ValueError, match="before 2010-01"):
        model.predict_at(["2009-12"])
    # the array path the ensemble uses takes month ordinals (year * 12 + month - 1)
    ordinals = np.array([2015 * 12 + 5, 2011 * 12 + 2, 2014 * 12 + 11])
    np.testing.assert_array_equal(model._values(ordinals, None, None, (95,)), mixed.to_numpy())


def test_a_series_with_zeros_gets_the_additive_model():
    y = ets_series(3, 48) - 400.0
    y.iloc[7] = 0.0
    model = DampedETS().fit(y)
    assert model.spec_["error"] == "add" and model.spec_["seasonal"] == "add"
    assert np.isfinite(model.predict(6).to_numpy()).all()


def test_the_additive_model_is_the_fallback_when_the_multiplicative_fit_fails(monkeypatch):
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    fit = ETSModel.fit

    def failing_mul(self, *args, **kwargs):
        if self.error == "mul":
            raise np.linalg.LinAlgError("simulated breakdown")
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(ETSModel, "fit", failing_mul)
    model = DampedETS().fit(ets_series(6, 48))
    assert model.spec_["error"] == "add"
    assert np.isfinite(model.predict(6).to_numpy()).all()


def test_regressors_are_ignored():
    y = ets_series(4, 48)
    X = pd.DataFrame({"phone_lines": np.arange(48.0)}, index=y.index)
    pd.testing.assert_frame_equal(DampedETS().fit(y, X).predict(6), DampedETS().fit(y).predict(6))


def test_ensemble_includes_the_smoothing_member():
    y = ets_series(5, 60)
    model = GPForecaster("ensemble").fit(y)
    assert any(isinstance(m, DampedETS) for m in model.members_)
    assert "damped-ets" in [m["kind"] for m in model.describe()["members"]]
    past = model.predict_at(y.index[12:18])
    assert np.isfinite(past.to_numpy()).all()


def test_cached_simulation_gives_the_answers_of_a_fresh_one():
    y = ets_series(5, 72)
    model = DampedETS().fit(y)
    short = model.predict(6)  # simulates (and caches) a short horizon first
    long = model.predict(40)  # grows the cache past it
    fresh = pickle.loads(pickle.dumps(model))
    assert "_future_cache" in model.__dict__ and "_future_cache" not in fresh.__dict__
    pd.testing.assert_frame_equal(long.iloc[:6], short)
    pd.testing.assert_frame_equal(fresh.predict(40), long)
    pd.testing.assert_frame_equal(DampedETS().fit(y).predict(3), short.iloc[:3])


def test_walking_out_month_by_month_does_not_resimulate_each_time(monkeypatch):
    model = DampedETS().fit(ets_series(6, 72))
    calls = []
    simulate = DampedETS._paths
    monkeypatch.setattr(DampedETS, "_paths", lambda self, steps: calls.append(steps) or simulate(self, steps))
    for steps in range(1, 150):
        model.predict_at([model.train_end_ + pd.DateOffset(months=steps)])
    assert len(calls) <= 3 and calls == sorted(calls) and calls[-1] >= 149
