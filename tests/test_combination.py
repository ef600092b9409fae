"""Combination rules (MLPipeline.combination) and the Ensemble that uses them; split-conformal quantiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from MLPipeline.combination import RULES, combine, fit_rule, member_backtests, weighted_median
from MLPipeline.ensemble import MEMBERS, Ensemble, make_member
from MLPipeline.forecaster import GPForecaster
from MLPipeline.intervals import conformal_quantile


def monthly(values, start="2012-01-01") -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=pd.date_range(start, periods=len(values), freq="MS"))


def seasonal_series(seed: int, n: int) -> pd.Series:
    """Trend + 12-month season + noise, positive."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return monthly(300 + 1.5 * t + 25 * np.sin(2 * np.pi * t / 12) + np.cumsum(rng.normal(0, 3, n))
                   + rng.normal(0, 4, n))


# ------------------------------------------------------------ split-conformal quantile
def test_conformal_quantile_is_the_n_plus_one_order_statistic():
    scores = np.arange(1.0, 20.0)[::-1]  # 19 scores, unsorted
    assert conformal_quantile(scores, 95) == 19.0  # ceil(20 x 0.95) = 19th smallest
    assert conformal_quantile(scores, 80) == 16.0  # ceil(20 x 0.8) = 16th
    assert conformal_quantile(scores[:5], 95) == 19.0  # n too small: the largest score
    with pytest.raises(ValueError):
        conformal_quantile([], 95)


def test_conformal_quantile_covers_at_least_the_level_on_exchangeable_scores():
    """Marginal coverage of a new score: in [level, level + 1/(n+1)] (the finite-sample guarantee)."""
    rng = np.random.default_rng(0)
    n, reps = 36, 20000
    scores = np.abs(rng.standard_normal((reps, n + 1)))
    for level in (80, 95):
        q = np.array([conformal_quantile(row[:n], level) for row in scores])
        covered = np.mean(scores[:, n] <= q)
        sd = np.sqrt(covered * (1 - covered) / reps)
        assert level / 100 - 4 * sd <= covered <= level / 100 + 1 / (n + 1) + 4 * sd, (level, covered)
        plain = np.mean(scores[:, n] <= np.quantile(scores[:, :n], level / 100, axis=1))
        assert plain < covered  # the plain empirical quantile covers less


def test_calibrated_gp_coverage_per_horizon_step_on_simulated_series():
    """24 simulated series x 12 held-out months: per step, calibrated 95% coverage within a binomial
    tolerance (3 sd at n = 24, and never below 0.75); 80% in groups of four steps (n = 96)."""
    inside80, inside95 = [], []
    for seed in range(24):
        y = seasonal_series(100 + seed, 66)
        fc = GPForecaster("level").fit(y.iloc[:54]).predict(12)
        actual = y.iloc[54:].to_numpy()
        inside80.append((actual >= fc["lower_80"]) & (actual <= fc["upper_80"]))
        inside95.append((actual >= fc["lower_95"]) & (actual <= fc["upper_95"]))
    per_step95 = np.mean(inside95, axis=0)
    tolerance95 = 3 * np.sqrt(0.95 * 0.05 / 24)
    assert np.all(per_step95 >= max(0.75, 0.95 - tolerance95)), per_step95
    groups80 = np.mean(np.array(inside80).reshape(24, 3, 4).transpose(1, 0, 2).reshape(3, -1), axis=1)
    tolerance80 = 3 * np.sqrt(0.8 * 0.2 / 96)
    assert np.all(np.abs(groups80 - 0.8) <= tolerance80 + 0.1), groups80


# ------------------------------------------------------------------ rules
def test_rules_on_a_known_backtest():
    actual = np.zeros(6)
    means = np.array([np.full(6, 1.0), np.full(6, 2.0), np.full(6, 4.0)])  # MAE 1, 2, 4
    backtest = {"actual": actual, "means": means}
    assert fit_rule("select", backtest)["member"] == 0
    assert fit_rule("trim", backtest)["member"] == 2
    np.testing.assert_allclose(fit_rule("inverse", backtest)["weights"], np.array([4, 2, 1]) / 7)
    w = fit_rule("softmax", backtest)["weights"]
    assert w[0] > w[1] > w[2] and w.sum() == pytest.approx(1)
    # shrink towards member 0: the median is 2, the lead 1, the actual 0: all the way to the lead
    assert fit_rule("shrink", backtest, lead=0)["share"] == 1.0
    assert fit_rule("shrink", backtest, lead=2)["share"] == 0.0
    parts = np.array([[[1.0, 5.0]], [[2.0, 6.0]], [[4.0, 9.0]]])
    np.testing.assert_allclose(combine(parts, fit_rule("select", backtest)), [[1.0, 5.0]])
    np.testing.assert_allclose(combine(parts, fit_rule("trim", backtest)), [[1.5, 5.5]])
    np.testing.assert_allclose(combine(parts, {"rule": "median"}), [[2.0, 6.0]])
    # no backtest (too short a series): every rule is the median
    assert all(fit_rule(r, None) == {"rule": "median"} for r in RULES)


def test_weighted_median_with_equal_weights_is_the_median():
    values = np.random.default_rng(1).normal(size=(4, 7, 3))
    np.testing.assert_allclose(weighted_median(values, np.full(4, 0.25)), np.median(values, axis=0))
    assert weighted_median(np.array([[1.0], [2.0], [10.0]]), np.array([0.6, 0.2, 0.2]))[0] == 1.0


@pytest.mark.parametrize("rule", ["softmax", "shrink"])
def test_combination_is_learned_from_the_training_window_only(rule):
    """Changing the months after the training window (the test months) changes nothing the rule learns."""
    y = seasonal_series(7, 84)
    spoiled = y.copy()
    spoiled.iloc[60:] = spoiled.iloc[60:] * 3 + 500  # the held-out months, wildly different
    a = Ensemble(combine=rule).fit(y.iloc[:60])
    b = Ensemble(combine=rule).fit(spoiled.iloc[:60])
    assert a.describe()["combination"] == b.describe()["combination"]
    pd.testing.assert_frame_equal(a.predict(12), b.predict(12))
    # ... while the training window itself does matter: its backtest reads the last 36 months
    backtest = member_backtests(lambda: [make_member(k, t, False) for k, t, _ in MEMBERS], y.iloc[:60])
    assert backtest["origins"] == [48, 36, 24] and len(backtest["actual"]) == 36
    np.testing.assert_array_equal(backtest["actual"], np.concatenate(
        [y.iloc[48:60], y.iloc[36:48], y.iloc[24:36]]).astype(float))


def test_ensemble_median_rule_is_the_plain_median_of_members():
    y = seasonal_series(3, 60)
    model = Ensemble().fit(y)
    parts = np.array([m.predict(6, level=(80, 95)).to_numpy() for m in model.members_])
    out = model.predict(6, level=(80, 95))
    np.testing.assert_allclose(out["mean"], np.median(parts[:, :, 0], axis=0))
    np.testing.assert_allclose(out["upper_95"], np.median(parts[:, :, -1], axis=0))
