"""fit_kinds: one model per served kind, each GP fitted once; where each kind's predictions start."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from MLPipeline.config import KINDS
from MLPipeline.forecaster import GPForecaster
from MLPipeline.pipeline import fit_kinds


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
    assert any(m is models["level"] for m in members) and any(m is models["difference"] for m in members)
    # A reused member predicts what a standalone fit of that kind predicts.
    for kind in ("level", "difference"):
        alone = GPForecaster(kind=kind).fit(series)
        np.testing.assert_allclose(models[kind].predict(6).to_numpy(), alone.predict(6).to_numpy(), rtol=1e-9)


def test_first_month_is_later_where_a_difference_model_takes_part(models, series):
    start = series.index[0]
    assert models["level"].first_month() == start
    assert models["difference"].first_month() == start + pd.offsets.MonthBegin(1)
    assert models["ensemble"].first_month() == start + pd.offsets.MonthBegin(1)
    for kind, model in models.items():
        assert np.isfinite(model.predict_at([model.first_month()])["mean"]).all(), kind
    with pytest.raises(ValueError, match="needs the previous month"):
        models["ensemble"].predict_at([start])
