"""Correctness of the model core: MAP objective, transform, calibration, ensemble, selection.

The public contract (shapes, errors, basic coverage) is in test_forecaster_api.py.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.gaussian_process import GaussianProcessRegressor

from MLPipeline.config import SEASON_LENGTH
from MLPipeline.ensemble import MEMBERS, Ensemble
from MLPipeline.forecaster import GPForecaster
from MLPipeline.gp import LogNormalPrior, MAPGaussianProcessRegressor, compile_kernel, set_theta
from MLPipeline.kernels import difference_kernel, level_kernel
from MLPipeline.models import make_model
from MLPipeline.selection import choose_kind
from MLPipeline.transforms import BoxCox, guerrero_lambda


def monthly(values, start="2012-01-01") -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=pd.date_range(start, periods=len(values), freq="MS"))


def seasonal_walk(seed: int, n: int, level: float = 300.0) -> pd.Series:
    """Random walk with drift + a 12-month season + noise: a trend no GP kernel matches exactly."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    walk = np.cumsum(rng.normal(1.0, 4.0, n))
    return monthly(level + walk + 20 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 4.0, n))


# ---------------------------------------------------------------- MAP objective
def _design(rng: np.random.Generator, n: int, n_regressors: int) -> tuple[np.ndarray, np.ndarray]:
    """(X, y): time in years ending at 0 plus standard-normal regressors, and a seasonal trend with noise."""
    t = (np.arange(n) - n + 1) / 12.0
    X = np.column_stack([t] + [rng.normal(size=n) for _ in range(n_regressors)])
    return X, np.sin(2 * np.pi * t) + 0.3 * t + rng.normal(0, 0.2, n)


@pytest.mark.parametrize("make_kernel", [level_kernel, difference_kernel], ids=["level", "difference"])
@pytest.mark.parametrize("n_regressors", [0, 2])
def test_map_objective_gradient_matches_finite_differences(make_kernel, n_regressors):
    rng = np.random.default_rng(0)
    X, y = _design(rng, 40, n_regressors)
    kernel, priors = make_kernel(n_regressors)
    gp = MAPGaussianProcessRegressor(kernel, priors=priors, optimizer=None, alpha=1e-8).fit(X, y)
    theta = gp.kernel_.theta + rng.normal(0, 0.3, gp.kernel_.theta.shape)
    value, grad = gp.log_marginal_likelihood(theta, eval_gradient=True)
    eps = 1e-5
    numeric = np.array([
        (gp.log_marginal_likelihood(theta + eps * e) - gp.log_marginal_likelihood(theta - eps * e)) / (2 * eps)
        for e in np.eye(len(theta))
    ])
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-4)
    # the objective is exactly likelihood + prior, and every free hyperparameter has a prior
    lml = GaussianProcessRegressor.log_marginal_likelihood(gp, theta)
    assert value == pytest.approx(lml + gp.log_prior(theta)[0])
    covered = sum(h.n_elements for h in gp.kernel_.hyperparameters if not h.fixed and h.name in priors)
    assert covered == len(theta)


@pytest.mark.parametrize("make_kernel", [level_kernel, difference_kernel], ids=["level", "difference"])
@pytest.mark.parametrize("n_regressors", [0, 1, 2])
def test_compiled_kernel_equals_the_kernel_objects(make_kernel, n_regressors):
    """The compiled kernel's value, gradient, theta, bounds and names are scikit-learn's, and its
    assign sets the same hyperparameters as the theta setter."""
    rng = np.random.default_rng(1)
    n = 50
    X = np.column_stack([(np.arange(n) - n + 1) / 12.0] + [rng.normal(size=n) for _ in range(n_regressors)])
    kernel, _ = make_kernel(n_regressors)
    compiled = compile_kernel(kernel, X)
    assert compiled is not None
    np.testing.assert_array_equal(compiled.theta, kernel.theta)
    np.testing.assert_array_equal(compiled.bounds, kernel.bounds)
    assert compiled.names == [h.name for h in kernel.hyperparameters if not h.fixed for _ in range(h.n_elements)]
    for _ in range(3):
        theta = kernel.theta + rng.normal(0, 0.7, kernel.theta.shape)
        K, grad = kernel.clone_with_theta(theta)(X, eval_gradient=True)
        K_c, grad_c = compiled.evaluate(theta)
        np.testing.assert_allclose(K_c, K, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.stack(grad_c, axis=2), grad, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(set_theta(make_kernel(n_regressors)[0], theta, 1 + n_regressors).theta, theta)


@pytest.mark.parametrize("make_kernel", [level_kernel, difference_kernel], ids=["level", "difference"])
@pytest.mark.parametrize("n_regressors", [0, 2])
def test_compiled_fit_equals_the_scikit_learn_fit(make_kernel, n_regressors):
    X, y = _design(np.random.default_rng(2), 48, n_regressors)
    y = (y - y.mean()) / y.std()
    kernel, priors = make_kernel(n_regressors)
    fast = MAPGaussianProcessRegressor(kernel, priors=priors, alpha=1e-8).fit(X, y)
    plain = MAPGaussianProcessRegressor(kernel, priors=priors, alpha=1e-8, compiled=False).fit(X, y)
    np.testing.assert_allclose(fast.kernel_.theta, plain.kernel_.theta, rtol=1e-6, atol=1e-6)
    assert fast.log_posterior_value_ == pytest.approx(plain.log_posterior_value_, rel=1e-9)
    assert fast.log_marginal_likelihood_value_ == pytest.approx(plain.log_marginal_likelihood_value_, rel=1e-9)
    X_new = X + 0.5 / 12.0
    for a, b in zip(fast.predict(X_new, return_std=True), plain.predict(X_new, return_std=True), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(kernel.theta, make_kernel(n_regressors)[0].theta)  # kernel param untouched


def test_log_normal_prior_density_and_gradient():
    prior = LogNormalPrior(median=2.0, sigma=0.5)
    theta = np.array([np.log(2.0), np.log(5.0)])
    logp, grad = prior.logpdf_theta(theta)
    assert logp == pytest.approx(stats.norm(np.log(2.0), 0.5).logpdf(theta).sum())
    assert grad[0] == pytest.approx(0.0) and grad[1] < 0  # pulls back toward the median
    with pytest.raises(ValueError):
        LogNormalPrior(0.0, 1.0)


def test_map_pulls_hyperparameters_toward_prior_medians():
    """With almost no data the fit stays near the prior medians instead of running to a bound."""
    y = monthly([10.0, 11.0] * 12)
    model = GPForecaster("level", calibrate=False).fit(y)
    theta = model.kernel_.theta
    medians = np.array([np.log(p.median) for p in model.gp_.priors.values()])
    assert np.all(np.abs(theta - medians) < 6 * max(p.sigma for p in model.gp_.priors.values()))


# ---------------------------------------------------------------- determinism
@pytest.mark.parametrize("kwargs", [{"kind": "level", "transform": "boxcox"}, {"kind": "ensemble"}],
                         ids=["level-boxcox", "ensemble"])
def test_fit_is_deterministic_for_a_fixed_seed(kwargs):
    y = seasonal_walk(1, 60)
    kind = kwargs.pop("kind")
    first = make_model(kind, random_state=3, **kwargs).fit(y)
    second = make_model(kind, random_state=3, **kwargs).fit(y)
    pd.testing.assert_frame_equal(first.predict(12), second.predict(12))
    np.testing.assert_array_equal(first.kernel_.theta, second.kernel_.theta)
    restored = pickle.loads(pickle.dumps(first))
    pd.testing.assert_frame_equal(restored.predict(12), first.predict(12))


# ---------------------------------------------------------------- calibration
def test_calibrated_interval_coverage_on_simulated_data():
    """16 seeded random-walk series x 12 held-out months: calibrated coverage near nominal."""
    inside95, inside80, factors = [], [], []
    for seed in range(16):
        y = seasonal_walk(200 + seed, 60)
        model = GPForecaster("level").fit(y.iloc[:48])
        fc = model.predict(12)
        actual = y.iloc[48:].to_numpy()
        inside95 += list((actual >= fc["lower_95"]) & (actual <= fc["upper_95"]))
        inside80 += list((actual >= fc["lower_80"]) & (actual <= fc["upper_80"]))
        factors.append(model.describe()["calibration_factors"]["95"])
    # 192 points in 16 correlated blocks: a wide but failing-capable band (uncalibrated ~0.75).
    assert 0.85 <= np.mean(inside95) <= 0.995
    assert 0.65 <= np.mean(inside80) <= 0.95
    assert min(factors) >= 1.0  # calibration only widens


def test_calibration_factor_is_the_conformal_quantile():
    model = GPForecaster("level", calibrate=False).fit(seasonal_walk(3, 40))
    base = model.predict(6)
    scores = np.linspace(0, 4, 101)
    model.calibration_ = {"abs_z": scores, "origins": 1}
    z95 = stats.norm.ppf(0.975)
    # split-conformal: the ceil(102 x 0.95) = 97th smallest of the 101 scores, not the plain quantile
    assert model._factor(95) == pytest.approx(scores[96] / z95)
    assert model._factor(50) == pytest.approx(scores[50] / stats.norm.ppf(0.75))
    wide = model.predict(6)
    np.testing.assert_allclose(wide["mean"], base["mean"])
    half, base_half = wide["upper_95"] - wide["mean"], base["upper_95"] - base["mean"]
    np.testing.assert_allclose(half / base_half, model._factor(95))


@pytest.mark.parametrize("seed", [0, 5])
def test_warm_started_calibration_equals_cold_started_refits(seed):
    """The calibration refits start from the full fit's hyperparameters; refits from the prior medians
    (a plain fit on each origin's window) give the same standardised errors and factors."""
    y = seasonal_walk(seed, 72)
    model = GPForecaster("level", calibrate=True).fit(y)
    cold = []
    for k in range(1, 4):
        origin = len(y) - SEASON_LENGTH * k
        sub = GPForecaster("level", calibrate=False).fit(y.iloc[:origin])
        future = y.index[origin:origin + SEASON_LENGTH]
        mean, var = sub._latent(future, None, None)
        cold.append(np.abs(y.iloc[origin:origin + SEASON_LENGTH].to_numpy() - mean) / np.sqrt(var))
    np.testing.assert_allclose(model.calibration_["abs_z"], np.concatenate(cold), rtol=1e-2, atol=1e-3)
    reference = GPForecaster("level", calibrate=False).fit(y)
    reference.calibration_ = {"abs_z": np.concatenate(cold), "origins": 3}
    for level in (80, 95):
        assert model._factor(level) == pytest.approx(reference._factor(level), rel=1e-3)


def test_calibration_uses_training_data_only():
    y = seasonal_walk(4, 72)
    spoiled = y.copy()
    spoiled.iloc[60:] += 500.0  # anything after the training window must not matter
    a = GPForecaster("level").fit(y.iloc[:60])
    b = GPForecaster("level").fit(spoiled.iloc[:60])
    np.testing.assert_array_equal(a.calibration_["abs_z"], b.calibration_["abs_z"])
    assert a.calibration_["origins"] == 3


# ---------------------------------------------------------------- Box-Cox
def test_guerrero_lambda_finds_the_variance_stabilising_power():
    rng = np.random.default_rng(5)
    t = np.arange(120)
    multiplicative = np.exp(np.log(50) + 0.02 * t + 0.1 * rng.normal(size=120))  # sd grows with the level
    additive = 50 + 2 * t + 10 * rng.normal(size=120)
    assert guerrero_lambda(multiplicative, 12) < 0.3
    assert guerrero_lambda(additive, 12) > 0.7
    assert guerrero_lambda(np.ones(20), 12) == 1.0  # fewer than two seasons: no transform


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_box_cox_round_trip_and_bias_adjusted_mean(lam):
    box = BoxCox(lam)
    y = np.array([0.5, 3.0, 40.0, 900.0])
    np.testing.assert_allclose(box.inverse(box.forward(y)), y, rtol=1e-10)
    z, sd = box.forward(np.array([40.0])), np.array([0.05])
    draws = box.inverse(np.random.default_rng(0).normal(z, sd, 200_000))
    assert box.mean(z, sd)[0] == pytest.approx(draws.mean(), rel=2e-3)


def test_no_negative_forecast_for_a_positive_series_with_box_cox():
    """A positive series falling toward zero (like the Insurance domain): the straight GP goes
    negative; the Box-Cox one never does, without any clipping."""
    rng = np.random.default_rng(6)
    t = np.arange(72)
    y = monthly(np.maximum(400 * np.exp(-t / 20) * (1 + 0.15 * np.sin(2 * np.pi * t / 12))
                           * np.exp(rng.normal(0, 0.1, 72)), 0.5))
    plain = GPForecaster("level", calibrate=False, clip_negative=False).fit(y).predict(36)
    boxcox = GPForecaster("level", transform="boxcox", clip_negative=False).fit(y)
    fc = boxcox.predict(36, level=(80, 95, 99))
    assert boxcox.lambda_ is not None and 0.0 <= boxcox.lambda_ <= 1.0
    assert (plain["lower_95"] < 0).any()  # the case the transform exists for
    assert (fc.drop(columns="std") >= 0).all().all()
    assert (fc["lower_99"] <= fc["lower_95"]).all() and (fc["upper_95"] <= fc["upper_99"]).all()
    assert ((fc["lower_95"] <= fc["mean"]) & (fc["mean"] <= fc["upper_95"])).all()


def test_box_cox_falls_back_when_the_series_has_zeros():
    y = seasonal_walk(7, 48) - 250.0
    y.iloc[5] = 0.0
    model = GPForecaster("level", transform="boxcox", calibrate=False).fit(y)
    assert model.lambda_ is None
    assert np.isfinite(model.predict(6).to_numpy()).all()


# ---------------------------------------------------------------- ensemble + selection
def test_ensemble_is_the_median_of_its_members():
    y = seasonal_walk(8, 60)
    model = Ensemble().fit(y)
    assert [(m.kind, getattr(m, "transform", None)) for m in model.members_] == [(k, t) for k, t, _ in MEMBERS]
    fc = model.predict(12, level=(80, 95))
    members = [m.predict(12, level=(80, 95)) for m in model.members_]
    for col in ("mean", "lower_80", "upper_80", "lower_95", "upper_95"):
        np.testing.assert_allclose(fc[col], np.median([f[col] for f in members], axis=0))
    assert (fc["std"] >= np.min([f["std"] for f in members], axis=0) - 1e-9).all()
    past = model.predict_at(y.index[24:30])
    assert list(past.columns) == ["mean", "std", "lower_95", "upper_95"]


def test_ensemble_with_regressors_needs_them_for_the_future():
    y = seasonal_walk(9, 48)
    X = pd.DataFrame({"phone_lines": np.arange(48) % 5, "channels": np.arange(48) % 3}, index=y.index, dtype=float)
    model = Ensemble().fit(y, X)
    with pytest.raises(ValueError, match="X_future"):
        model.predict(3)
    future = pd.DataFrame({"phone_lines": [1.0, 2.0, 3.0], "channels": [1.0, 1.0, 2.0]},
                          index=pd.date_range(y.index[-1] + pd.offsets.MonthBegin(1), periods=3, freq="MS"))
    assert len(model.predict(3, X_future=future)) == 3


def test_choose_kind_reports_its_training_backtest():
    y = seasonal_walk(10, 60)
    kind, details = choose_kind(y)
    assert kind == "ensemble" and details["preferred"] == kind and details["margin"] is None
    assert "not used to switch" in details["reason"]
    assert set(details["backtest"]) == {"level", "difference", "ensemble"}
    assert details["origins"] == ["2015-01-01", "2016-01-01"]
    assert all(np.isfinite(v["mase"]) and np.isfinite(v["smape"]) for v in details["backtest"].values())
    assert kind.split()[0] in details["reason"]
    # restricted to the pipeline's kinds, the winner is the lower backtest MASE of those two
    kind2, details2 = choose_kind(y, kinds=("level", "difference"), margin=0.0)
    assert kind2 == min(details2["backtest"], key=lambda k: details2["backtest"][k]["mase"])
    # with a margin, a kind that beats the ensemble's backtest by it is chosen, one that does not is not
    scores = {k: v["mase"] for k, v in details["backtest"].items()}
    best = min(scores, key=scores.get)
    assert best != "ensemble"  # this series has a kind that beats the ensemble's backtest
    gain = 1 - scores[best] / scores["ensemble"]
    assert choose_kind(y, margin=gain / 2)[0] == best
    assert choose_kind(y, margin=gain + 0.01)[0] == "ensemble"


def test_choose_kind_on_a_series_too_short_to_backtest():
    kind, details = choose_kind(seasonal_walk(11, 30))
    assert kind == "ensemble" and details["backtest"] == {} and "no backtest origin" in details["reason"]
    with pytest.raises(ValueError, match="kinds"):
        choose_kind(seasonal_walk(11, 30), kinds=("residual",))
