"""The state-space GP: exact against a dense GP, honest intervals, guard rails, bad input."""

from __future__ import annotations

import logging

import celerite2
import numpy as np
import pandas as pd
import pytest
from celerite2 import terms

from MLPipeline.models import make_model
from MLPipeline.statespace import StateSpaceGP, fourier_columns


def _matern32(tau, sigma, rho):
    r = np.sqrt(3.0) * tau / rho
    return sigma**2 * (1 + r) * np.exp(-r)


def _level(tau, kernel, h):
    """The level term of ``kernel`` (StateSpaceGP's ``level_kernel``): exponential, Matern-3/2 or both."""
    if kernel == "matern32":
        return _matern32(tau, h["level_sigma"], h["level_rho"])
    k = h["level_sigma"] ** 2 * np.exp(-tau / h["level_rho"])
    return k + _matern32(tau, h["smooth_sigma"], h["smooth_rho"]) if kernel == "both" else k


def _sho(tau, sigma, rho, quality):
    # Simple harmonic oscillator, Q > 1/2 (Foreman-Mackey et al. 2017, eq. 23), written out here
    # so that the reference does not share celerite2's code.
    w0 = 2 * np.pi / rho
    eta = np.sqrt(1 - 1 / (4 * quality**2))
    return sigma**2 * np.exp(-w0 * tau / (2 * quality)) * (
        np.cos(eta * w0 * tau) + np.sin(eta * w0 * tau) / (2 * eta * quality))


def _dense_forecast(model: StateSpaceGP, y: np.ndarray, steps: int):
    """The same model by dense linear algebra: O(n^3), Rasmussen & Williams eq. 2.41."""
    h = model.hyperparameters_
    n = len(y)
    t = np.arange(n, dtype=float)
    ts = n - 1 + np.arange(1, steps + 1, dtype=float)

    def cov(a, b):
        tau = np.abs(a[:, None] - b[None, :])
        k = _level(tau, model.level_kernel, h) + _matern32(tau, h["irregular_sigma"], h["irregular_rho"])
        for i, period in enumerate(model.periods_):
            count = model.covariance_harmonics if period == min(model.periods_) else 1
            for j in range(1, count + 1):
                k = k + _sho(tau, h[f"seasonal{i}_sigma"] / np.sqrt(count), period / j, j * h[f"seasonal{i}_quality"])
        return k

    z = (y - y.mean()) / y.std()

    def design(times):
        return np.column_stack([np.ones_like(times), (times - (n - 1)) / n,
                                fourier_columns(times, model.periods_, model.harmonics_)])

    F, Fs = design(t), design(ts)
    K = cov(t, t) + h["noise_sigma"] ** 2 * np.eye(n)
    Ks, Kss = cov(t, ts), cov(ts, ts)
    Kinv = np.linalg.inv(K)
    A = F.T @ Kinv @ F
    beta = np.linalg.solve(A, F.T @ Kinv @ z)
    R = Fs - Ks.T @ Kinv @ F
    mean = Fs @ beta + Ks.T @ Kinv @ (z - F @ beta)
    var = np.diag(Kss - Ks.T @ Kinv @ Ks + R @ np.linalg.solve(A, R.T)) + h["noise_sigma"] ** 2
    return y.mean() + y.std() * mean, y.std() * np.sqrt(var)


def _seasonal_series(n: int, period: float, rng: np.random.Generator, *, noise=0.3) -> np.ndarray:
    t = np.arange(n)
    return (10 + 0.002 * t + 2 * np.sin(2 * np.pi * t / period) + np.cos(4 * np.pi * t / period)
            + rng.normal(0, noise, n))


@pytest.mark.parametrize("level_kernel", ["both", "exponential", "matern32"])
@pytest.mark.parametrize("fitted", [False, True])
def test_agrees_with_a_dense_exact_gp_of_the_same_kernel(fitted, level_kernel):
    y = _seasonal_series(150, 24, np.random.default_rng(0))
    model = StateSpaceGP(periods=(24, 60), harmonics=(3, 2), level_kernel=level_kernel, optimize=fitted).fit(y)
    fc = model.predict(30, level=(95,))
    mean, std = _dense_forecast(model, y, 30)
    np.testing.assert_allclose(fc["mean"], mean, rtol=0, atol=1e-5 * y.std())
    np.testing.assert_allclose(fc["std"], std, rtol=1e-4)


def test_a_model_made_before_the_level_had_a_choice_keeps_its_matern_level():
    y = _seasonal_series(120, 24, np.random.default_rng(5))
    matern = StateSpaceGP(periods=(24,), level_kernel="matern32", optimize=False).fit(y).predict(12)["mean"]
    old = StateSpaceGP(periods=(24,), optimize=False)
    del old.level_kernel  # what an older pickle holds
    np.testing.assert_array_equal(old.fit(y).predict(12)["mean"], matern)
    other = StateSpaceGP(periods=(24,), level_kernel="both", optimize=False).fit(y).predict(12)["mean"]
    assert np.max(np.abs(other - matern)) > 1e-6  # the choice is not ignored
    with pytest.raises(ValueError, match="level_kernel must be one of"):
        StateSpaceGP(level_kernel="rbf").fit(y)


def test_its_likelihood_is_the_dense_gaussian_one():
    rng = np.random.default_rng(1)
    t = np.arange(60, dtype=float)
    y = rng.normal(size=60)
    gp = celerite2.GaussianProcess(terms.SHOTerm(sigma=0.7, rho=12.0, Q=5.0))
    gp.compute(t, diag=np.full(60, 0.1))
    K = _sho(np.abs(t[:, None] - t[None, :]), 0.7, 12.0, 5.0) + 0.1 * np.eye(60)
    sign, logdet = np.linalg.slogdet(K)
    dense = -0.5 * (y @ np.linalg.solve(K, y) + logdet + 60 * np.log(2 * np.pi))
    assert sign > 0 and gp.log_likelihood(y) == pytest.approx(dense, rel=1e-9)


def test_intervals_cover_at_the_nominal_rate_on_simulated_series():
    # Series drawn from the model's own family; 40 series x 24 steps. The steps of one series are
    # correlated, so the tolerance is wider than a binomial one on 960 independent points.
    rng = np.random.default_rng(7)
    hits = {80: [], 95: []}
    for _ in range(40):
        t = np.arange(264, dtype=float)
        gp = celerite2.GaussianProcess(
            terms.Matern32Term(sigma=1.0, rho=60.0) + terms.SHOTerm(sigma=0.5, rho=24.0, Q=8.0)
            + terms.Matern32Term(sigma=0.3, rho=3.0), mean=0.0)
        gp.compute(t, diag=np.full(len(t), 0.2**2))
        y = 20 + 3 * np.sin(2 * np.pi * t / 24) + gp.dot_tril(rng.normal(size=len(t)))  # L z ~ N(0, K)
        fc = StateSpaceGP(periods=(24,), harmonics=(2,)).fit(y[:240]).predict(24, level=(80, 95))
        for lv in hits:
            hits[lv].append((y[240:] >= fc[f"lower_{lv}"]) & (y[240:] <= fc[f"upper_{lv}"]))
    assert 0.72 <= np.mean(hits[80]) <= 0.88
    assert 0.90 <= np.mean(hits[95]) <= 0.99


def test_recovers_the_seasonal_shape_and_beats_the_mean():
    rng = np.random.default_rng(3)
    y = _seasonal_series(24 * 30, 24, rng)
    fc = StateSpaceGP(periods=(24, 168)).fit(y[:-48]).predict(48)
    truth = y[-48:]
    assert np.mean(np.abs(fc["mean"] - truth)) < 0.5 * np.mean(np.abs(y[:-48].mean() - truth))


def test_regressors_enter_the_mean():
    rng = np.random.default_rng(4)
    n = 200
    promo = (rng.random(n + 10) < 0.2).astype(float)
    y = 50 + 8 * promo + rng.normal(0, 1, n + 10)
    model = StateSpaceGP().fit(y[:n], promo[:n, None])
    fc = model.predict(10, promo[n:, None], level=(95,))
    assert np.mean(np.abs(fc["mean"] - (50 + 8 * promo[n:]))) < 1.5
    with pytest.raises(ValueError, match="regressors"):
        model.predict(10)
    with pytest.raises(ValueError, match="X must be 11 x 1 finite numbers"):
        model.predict(11, promo[n:, None])


def test_a_series_longer_than_max_points_is_cut_with_one_log_line(caplog):
    y = _seasonal_series(500, 24, np.random.default_rng(5))
    with caplog.at_level(logging.WARNING, logger="MLPipeline.statespace"):
        model = StateSpaceGP(periods=(24,), max_points=300, optimize=False).fit(y)
    assert model.n_train_ == 300 and model.n_dropped_ == 200
    assert [r.getMessage() for r in caplog.records] == [
        "series has 500 points: fitting its most recent 300 (max_points)"]


@pytest.mark.parametrize("call, match", [
    (lambda: StateSpaceGP().fit([1.0, np.nan] * 10), "finite"),
    (lambda: StateSpaceGP().fit(np.ones(5)), "at least 8"),
    (lambda: StateSpaceGP().fit(np.ones(20), np.ones((19, 1))), "one row per value of y"),
    (lambda: StateSpaceGP(periods=(1,)).fit(np.arange(50.0)), "at least 2 steps"),
    (lambda: StateSpaceGP().predict(3), "fit before predict"),
    (lambda: StateSpaceGP(optimize=False).fit(np.arange(50.0)).predict(0), "positive whole number"),
    (lambda: StateSpaceGP(optimize=False).fit(np.arange(50.0)).predict(3, level=(120,)), "outside"),
])
def test_bad_input_is_one_readable_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_is_registered_by_kind_as_the_served_forecaster_of_a_frequency():
    from MLPipeline.statespace_forecaster import StateSpaceForecaster

    model = make_model("statespace", frequency="hourly")
    assert isinstance(model, StateSpaceForecaster) and model.frequency == "hourly"


def _hourly(n: int, seed: int = 7, start: str = "2024-03-01") -> pd.Series:
    return pd.Series(100 + 10 * _seasonal_series(n, 24, np.random.default_rng(seed)),
                     index=pd.date_range(start, periods=n, freq="h"))


def test_the_served_forecaster_answers_periods_as_the_array_model_answers_steps():
    from MLPipeline.statespace_forecaster import StateSpaceForecaster

    y = _hourly(300)
    served = StateSpaceForecaster("hourly", optimize=False).fit(y)
    plain = StateSpaceGP(periods=(24, 168), optimize=False).fit(y.to_numpy())
    ahead = served.predict(30, level=(80, 95))
    expected = plain.predict(30, level=(80, 95))
    assert list(ahead.index) == list(pd.date_range("2024-03-13 12:00", periods=30, freq="h"))
    for column in ("mean", "std", "upper_80", "upper_95"):
        np.testing.assert_allclose(ahead[column], expected[column], rtol=1e-9)
    # any periods, past and future, in any order, with repeats: each row as if asked alone
    asked = pd.DatetimeIndex(["2024-03-14 00:00", "2024-03-01 05:00", "2024-03-14 00:00", "2024-03-02 00:00"])
    rows = served.predict_at(asked, level=(95,))
    for stamp, (_, row) in zip(asked, rows.iterrows(), strict=True):
        alone = served.predict_at(pd.DatetimeIndex([stamp]), level=(95,)).iloc[0]
        np.testing.assert_allclose(row.to_numpy(), alone.to_numpy(), rtol=1e-9)
    assert rows["std"].iloc[1] < ahead["std"].iloc[-1]  # a fitted hour is surer than one 30 ahead
    with pytest.raises(ValueError, match="cannot predict before 2024-03-01T00:00:00Z"):
        served.predict_at(pd.DatetimeIndex(["2024-02-29 23:00"]))
    with pytest.raises(ValueError, match="not on this model's hourly steps"):
        served.predict_at(["2024-03-20T10:30:00Z"])


def test_the_served_forecaster_looks_regressors_up_by_period():
    from MLPipeline.statespace_forecaster import StateSpaceForecaster

    y = _hourly(200, seed=3)
    promo = pd.DataFrame({"promo": (np.arange(200) % 50 < 5).astype(float)}, index=y.index)
    model = StateSpaceForecaster("hourly", optimize=False).fit(y + 30 * promo["promo"], promo)
    future = pd.DataFrame({"promo": [1.0, 0.0]}, index=pd.date_range(y.index[-1], periods=3, freq="h")[1:])
    on, off = model.predict(2, future)["mean"]
    assert model.regressors_ == ("promo",) and on - off > 15
    with pytest.raises(ValueError, match="X has no row for"):
        model.predict_at(pd.DatetimeIndex([y.index[-1] + pd.Timedelta(hours=5)]), future)


def test_a_long_forecast_does_not_hold_an_n_by_steps_matrix():
    import tracemalloc

    model = StateSpaceGP(periods=(24, 168), optimize=False).fit(_seasonal_series(4000, 24, np.random.default_rng(6)))
    tracemalloc.start()
    model.predict(336)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # celerite2's variance for all steps at once holds about thirty n x steps matrices; in chunks, a few
    assert peak < 3 * 4000 * 336 * 8
