"""The pipeline's per-domain choices: one model per kind (each GP fitted once), regressors or not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from MLPipeline.config import DOMAINS, KINDS, REGRESSORS
from MLPipeline.forecaster import GPForecaster
from MLPipeline.pipeline import RunConfig, _selection_task, fit_kinds


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
        alone = GPForecaster(kind=kind).fit(series)
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
    return pd.DataFrame({DOMAINS[0]: y, REGRESSORS[0]: lines, REGRESSORS[1]: channels}, index=index)


@pytest.mark.parametrize("helpful", [True, False], ids=["regressors-drive-y", "regressors-are-noise"])
def test_auto_uses_the_regressors_only_where_the_training_backtest_says_they_help(helpful, tmp_path):
    cfg = RunConfig(data_path=tmp_path / "unused.xlsx", output_dir=tmp_path, regressors="auto")
    domain, details = _selection_task(DOMAINS[0], regressor_frame(helpful), cfg)
    assert domain == DOMAINS[0] and details["uses_regressors"] is helpful
    assert ("regressors used" if helpful else "univariate") in details["regressor_reason"]
    assert details["preferred"] in KINDS and details["backtest_other"]


def test_regressor_mode_is_checked():
    with pytest.raises(ValueError, match="regressors must be one of auto, always, never"):
        RunConfig(data_path="x", output_dir="y", regressors="sometimes")
