"""The exponential-smoothing ensemble members, damped-trend ETS and Theta (MLPipeline/smoothing.py)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from conftest import holdout_coverage

from MLPipeline.ensemble import Ensemble
from MLPipeline.forecaster import GPForecaster
from MLPipeline.smoothing import DampedETS, Theta


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
    series = (ets_series(100 + seed, 72) for seed in range(20))
    covered = holdout_coverage(((y.iloc[:60], y.iloc[60:]) for y in series),
                               lambda train, h: DampedETS().fit(train).predict(h))
    # measured 0.846 / 0.688: ETS intervals ignore the uncertainty of the estimated parameters,
    # so they run a little narrow even on their own process; one-step-width bounds would give ~0.4.
    assert 0.80 <= covered[95] <= 1.0
    assert 0.60 <= covered[80] <= 0.92


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


def test_lean_ets_results_equal_statsmodels_results():
    """The ETS member's results skip only the parameter covariance: fit, fitted values, scale,
    forecasts, simulated paths and AIC are statsmodels' own."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    from MLPipeline.etsfit import LeanETSModel

    y = ets_series(3, 60)
    spec = {"error": "mul", "trend": "add", "damped_trend": True, "seasonal": "mul", "seasonal_periods": 12}
    lean = LeanETSModel(y, **spec).fit(disp=False)
    full = ETSModel(y, **spec).fit(disp=False)
    np.testing.assert_array_equal(lean.params, full.params)
    np.testing.assert_array_equal(lean.fittedvalues, full.fittedvalues)
    np.testing.assert_array_equal(lean.forecast(18), full.forecast(18))
    assert lean.scale == full.scale and lean.aic == full.aic
    paths = [r.simulate(12, anchor="end", repetitions=50, rng=np.random.default_rng(0)) for r in (lean, full)]
    np.testing.assert_array_equal(*paths)
    assert np.isnan(lean.cov_params_approx).all()
    assert isinstance(DampedETS().fit(y).results_.model, LeanETSModel)


def test_regressors_are_ignored():
    y = ets_series(4, 48)
    X = pd.DataFrame({"phone_lines": np.arange(48.0)}, index=y.index)
    pd.testing.assert_frame_equal(DampedETS().fit(y, X).predict(6), DampedETS().fit(y).predict(6))


def test_ensemble_includes_the_smoothing_members():
    y = ets_series(5, 60)
    model = Ensemble().fit(y)
    assert [type(m) for m in model.members_ if not isinstance(m, GPForecaster)] == [DampedETS, Theta]
    assert {"damped-ets", "theta"} <= {m["kind"] for m in model.describe()["members"]}
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


# --- Theta --------------------------------------------------------------------------------------


def theta_series(seed: int, n: int, *, sigma: float = 0.03) -> pd.Series:
    """SES with drift and relative errors, times a 12-month multiplicative season: the process
    Theta's intervals assume (an ARIMA(0,1,1) with drift on the deseasonalised scale)."""
    rng = np.random.default_rng(seed)
    season = 1 + 0.25 * np.sin(2 * np.pi * np.arange(12) / 12)
    season /= season.mean()
    level, drift, alpha = 400.0, 2.0, 0.4
    out = []
    for t in range(n):
        error = rng.normal(0, sigma * level)
        out.append((level + drift + error) * season[t % 12])
        level = level + drift + alpha * error
    return pd.Series(out, index=pd.date_range("2012-01-01", periods=n, freq="MS"))


def test_theta_point_forecasts_equal_statsmodels_theta_model():
    from statsmodels.tsa.forecasting.theta import ThetaModel

    for seed in range(3):
        y = theta_series(seed, 72)
        model = Theta().fit(y)
        assert model.method_ == "multiplicative" and model.error_ == "mul"
        periods = pd.Series(y.to_numpy(), index=pd.period_range("2012-01", periods=72, freq="M"))
        expected = ThetaModel(periods, period=12).fit().forecast(18).to_numpy()
        # same method; the two SES fits stop at slightly different alphas (~1e-3)
        np.testing.assert_allclose(model.predict(18)["mean"].to_numpy(), expected, rtol=2e-3)


def test_theta_is_deterministic_pickles_and_orders_its_bounds():
    y = theta_series(7, 60)
    model = Theta().fit(y)
    assert model.fit(y) is model
    fc = model.predict(24, level=(50, 80, 95, 99))
    pd.testing.assert_frame_equal(fc, Theta().fit(y).predict(24, level=(50, 80, 95, 99)))
    pd.testing.assert_frame_equal(pickle.loads(pickle.dumps(model)).predict(24, level=(50, 80, 95, 99)), fc)
    assert np.isfinite(fc.to_numpy()).all() and (fc["lower_99"] >= 0).all()
    assert (fc["lower_99"] <= fc["lower_95"]).all() and (fc["lower_95"] <= fc["lower_80"]).all()
    assert (fc["lower_80"] <= fc["lower_50"]).all() and (fc["lower_50"] <= fc["mean"]).all()
    assert (fc["mean"] <= fc["upper_50"]).all() and (fc["upper_95"] <= fc["upper_99"]).all()
    width = (fc["upper_95"] - fc["lower_95"]) / fc["mean"]
    assert width.iloc[-1] > width.iloc[0]  # uncertainty grows with the horizon


def test_theta_interval_coverage_on_simulated_data():
    """20 simulated series x 12 held-out months: coverage near nominal (dependent months: wide band)."""
    series = (theta_series(200 + seed, 84) for seed in range(20))
    covered = holdout_coverage(((y.iloc[:72], y.iloc[72:]) for y in series),
                               lambda train, h: Theta().fit(train).predict(h))
    # measured 0.979 / 0.863; bounds of the one-step width (not growing with the horizon): 0.863 at 95%
    assert 0.90 <= covered[95] <= 1.0
    assert 0.65 <= covered[80] <= 0.95


def test_theta_past_months_are_one_step_forecasts():
    y = theta_series(8, 48)
    model = Theta().fit(y)
    past = model.predict_at(y.index)
    # the first month is its own forecast; later ones use only earlier months: refitting on the
    # first k months with the same parameters would give the same SES value at k
    assert past["mean"].iloc[0] == pytest.approx(y.iloc[0])
    errors = (y - past["mean"]).iloc[12:] / past["mean"].iloc[12:]
    assert abs(errors.mean()) < 0.02 and errors.std() < 0.1  # unbiased and about the simulated 3%
    assert (past["lower_95"] < past["mean"]).all() and (past["mean"] < past["upper_95"]).all()
    with pytest.raises(ValueError, match="before 2012-01"):
        model.predict_at(["2011-12"])


def test_theta_handles_series_that_are_not_positive_or_not_seasonal():
    rng = np.random.default_rng(9)
    index = pd.date_range("2015-01-01", periods=48, freq="MS")
    flat = pd.Series(100 + np.cumsum(rng.normal(0, 1, 48)), index=index)  # a random walk: no season
    model = Theta().fit(flat)
    assert model.method_ == "none" and model.error_ == "mul"
    assert np.isfinite(model.predict(6).to_numpy()).all()
    signed = theta_series(10, 48) - 400.0  # crosses zero: additive season and errors
    model = Theta().fit(signed)
    assert model.method_ == "additive" and model.error_ == "add"
    assert not model.nonnegative_ and np.isfinite(model.predict(6).to_numpy()).all()
    constant = pd.Series(50.0, index=index)
    np.testing.assert_allclose(Theta().fit(constant).predict(3)["mean"], 50.0)
