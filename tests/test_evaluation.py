"""Metrics against hand computations, and the normality table's shape."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from MLPipeline import evaluation as ev
from MLPipeline.data import load_panel
from MLPipeline.normality import normality_table, series_tests


def test_point_metrics_by_hand():
    a, f = np.array([100.0, 200.0, 0.0]), np.array([110.0, 150.0, 0.0])
    assert ev.mae(a, f) == pytest.approx(20.0)
    assert ev.rmse(a, f) == pytest.approx(np.sqrt((100 + 2500) / 3))
    assert ev.mape(a, f) == pytest.approx(100 * (0.1 + 0.25) / 2)  # the zero actual is skipped
    assert ev.smape(a, f) == pytest.approx(100 * (20 / 210 + 100 / 350 + 0) / 3)


def test_scaled_metrics_by_hand():
    insample = np.arange(24, dtype=float) * 2  # seasonal-naive error is always 24
    assert ev.seasonal_naive_scale(insample) == pytest.approx(24.0)
    assert ev.mase([10, 20], [13, 14], insample) == pytest.approx(4.5 / 24)
    # MSIS: width 10 each; second actual is 5 above the upper bound -> penalty 2/0.05*5 = 200.
    assert ev.msis([5, 20], [0, 5], [10, 15], insample) == pytest.approx((10 + 10 + 200) / 2 / 24)
    assert ev.coverage([5, 20], [0, 5], [10, 15]) == 0.5


def test_rolling_origin_uses_only_the_past():
    y = pd.Series(np.arange(48, dtype=float), index=pd.date_range("2015-01", periods=48, freq="MS"))
    seen = []

    def fit_predict(y_train, x_train, horizon, x_future):
        seen.append(len(y_train))
        mean = np.full(horizon, y_train.iloc[-1])
        return pd.DataFrame({"mean": mean, "lower_80": mean - 1, "upper_80": mean + 1,
                             "lower_95": mean - 2, "upper_95": mean + 2})

    rows = ev.rolling_origin(y, fit_predict, origins=ev.backtest_origins(36, 12, folds=2), horizon=12)
    assert seen == [24]  # the origin at 12 is below the 24-month minimum and is dropped
    assert rows[-1]["origin"] == "2017-01-01" and rows[-1]["mae"] == pytest.approx(np.mean(np.arange(1, 13)))


def test_normality_table_flags_non_normal(sample_path):
    table = normality_table(load_panel(sample_path))
    rows = [t for parts in table.values() for tests in parts.values() for t in tests.values()]
    assert len(table) == 5 and len(rows) == 5 * 2 * 3
    assert all(0 <= r["p_value"] <= 1 for r in rows)
    rng = np.random.default_rng(0)
    skewed = series_tests(np.exp(rng.normal(0, 1.5, 200)))
    assert not any(t["normal"] for t in skewed.values())  # log-normal data: all three reject


def test_a_constant_series_is_not_testable_and_says_so():
    for test in series_tests(np.full(40, 7.0)).values():
        assert test["p_value"] is None and test["normal"] is None and "constant" in test["note"]
