"""The pipeline's per-domain choices: one model per kind (each GP fitted once), regressors or not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from MLPipeline.config import KINDS
from MLPipeline.data import DataError
from MLPipeline.forecaster import GPForecaster
from MLPipeline.models import make_model
from MLPipeline.pipeline import RunConfig, fit_kinds, select
from MLPipeline.sample_data import DEFAULT_QUEUES, REGRESSORS


@pytest.fixture(scope="module")
def series() -> pd.Series:
    rng = np.random.default_rng(7)
    t = np.arange(48)
    values = 200 + 2 * t + 30 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 5, t.size)
    return pd.Series(values, index=pd.date_range("2016-01-01", periods=48, freq="MS"), name="y")


@pytest.fixture(scope="module")
def models(series) -> dict[str, GPForecaster]:
    return fit_kinds(series)


def test_fit_kinds_gives_every_kind_and_reuses_the_ensemble_members(models, series):
    assert tuple(models) == KINDS
    members = models["ensemble"].members_
    assert any(m is models["level"] for m in members)  # the calibrated level GP is fitted once
    assert not any(m is models["difference"] for m in members)  # not a member: fitted on its own
    # A reused member predicts what a standalone fit of that kind predicts.
    for kind in ("level", "difference"):
        alone = make_model(kind).fit(series)
        np.testing.assert_allclose(models[kind].predict(6).to_numpy(), alone.predict(6).to_numpy(), rtol=1e-9)


def test_first_month_is_later_where_a_difference_model_takes_part(models, series):
    start = series.index[0]
    assert models["level"].first_month() == start
    assert models["difference"].first_month() == start + pd.offsets.MonthBegin(1)
    assert models["ensemble"].first_month() == start  # its members all answer the first month
    for kind, model in models.items():
        assert np.isfinite(model.predict_at([model.first_month()])["mean"]).all(), kind
    with pytest.raises(ValueError, match="needs the previous month"):
        models["difference"].predict_at([start])


def regressor_frame(helpful: bool, n: int = 72) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    lines = rng.integers(1, 8, n).astype(float)  # jumps month to month: time alone cannot explain it
    channels = rng.integers(1, 5, n).astype(float)
    t = np.arange(n)
    base = 500 + 3 * t + 40 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 8, n)
    y = base + (120 * lines if helpful else 0.0)
    index = pd.date_range("2014-01-01", periods=n, freq="MS", name="month")
    return pd.DataFrame({DEFAULT_QUEUES[0]: y, REGRESSORS[0]: lines, REGRESSORS[1]: channels}, index=index)


@pytest.mark.parametrize("helpful", [True, False], ids=["regressors-drive-y", "regressors-are-noise"])
def test_auto_uses_the_regressors_only_where_the_training_backtest_says_they_help(helpful):
    frame = regressor_frame(helpful)
    details = select(frame[DEFAULT_QUEUES[0]], frame[list(REGRESSORS)], "auto")
    assert details["uses_regressors"] is helpful
    assert ("regressors used" if helpful else "univariate") in details["regressor_reason"]
    assert details["preferred"] in KINDS and details["backtest_other"]


def test_regressor_mode_and_kinds_are_checked():
    with pytest.raises(ValueError, match="use_regressors must be one of auto, always, never"):
        RunConfig(data_path="x", output_dir="y", use_regressors="sometimes")
    with pytest.raises(DataError, match="kinds must be some of"):
        RunConfig(data_path="x", output_dir="y", kinds=("level", "magic"))


def test_without_a_backtest_auto_means_univariate_and_the_ensemble_is_served():
    frame = regressor_frame(True)
    details = select(frame[DEFAULT_QUEUES[0]], frame[list(REGRESSORS)], "auto", backtest=False)
    assert details["uses_regressors"] is False and details["preferred"] == "ensemble"
    assert "no backtest" in details["reason"]


def test_seasonal_naive_alone_is_a_kind_to_train(series):
    models = fit_kinds(series, kinds=("seasonal-naive",))
    forecast = models["seasonal-naive"].predict(12)["mean"].to_numpy()
    np.testing.assert_array_equal(forecast, series.iloc[-12:].to_numpy())
