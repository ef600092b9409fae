"""MLPipeline.eda: what each figure draws (checked against the data and scipy), the files it writes,
and that drawing leaves matplotlib's global state (pyplot's figures, rcParams) alone."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from scipy import stats

from MLPipeline import eda
from MLPipeline.artifacts import series_key
from MLPipeline.calendars import calendar_for
from MLPipeline.data import load_panel
from MLPipeline.sample_data import DEFAULT_QUEUES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def line(ax, label: str):
    (found,) = [x for x in ax.lines if x.get_label() == label]
    return found


@pytest.fixture
def forecast_inputs(sample_frame):
    series = sample_frame["Banking"]
    train, test = series.iloc[:-6], series.iloc[-6:]
    mean = test.to_numpy() * 1.02
    forecast = pd.DataFrame(
        {"mean": mean, "lower_80": mean - 10, "upper_80": mean + 10, "lower_95": mean - 20, "upper_95": mean + 20},
        index=test.index,
    )
    return train, test, forecast


def test_history_draws_the_domains_series(sample_frame):
    fig = eda.history_figure(sample_frame, "Telecom")
    (ax,) = fig.axes
    drawn = line(ax, "Telecom")
    np.testing.assert_allclose(drawn.get_ydata(), sample_frame["Telecom"].to_numpy())
    assert len(drawn.get_xdata()) == len(sample_frame)
    assert ax.get_title() == "Telecom: monthly call volume" and legend_texts(ax) == ["Telecom"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("month", "calls per month")


def test_distribution_draws_density_and_qq_for_levels_and_differences(sample_frame):
    fig = eda.distribution_figure(sample_frame, "Healthcare")
    assert len(fig.axes) == 4
    level = sample_frame["Healthcare"].to_numpy()
    for (density_ax, qq_ax), values in zip(
        (fig.axes[:2], fig.axes[2:]), (level, np.diff(level)), strict=True
    ):
        assert sorted(legend_texts(density_ax)) == ["histogram", "kernel density", "normal fit"]
        bars = density_ax.patches
        area = sum(b.get_width() * b.get_height() for b in bars)
        assert area == pytest.approx(1.0)  # a density histogram
        kde = line(density_ax, "kernel density")
        x, y = kde.get_xdata(), kde.get_ydata()
        np.testing.assert_allclose(y, stats.gaussian_kde(values)(x), rtol=0.05)  # scipy's KDE, Scott's rule
        (osm, osr), (slope, intercept, _) = stats.probplot(values, dist="norm")
        (points,) = qq_ax.collections
        np.testing.assert_allclose(points.get_offsets(), np.column_stack([osm, osr]))
        np.testing.assert_allclose(line(qq_ax, "normal line").get_ydata(), slope * osm + intercept)
        assert legend_texts(qq_ax) == ["observed quantiles", "normal line"]


def test_a_constant_series_gets_no_density_curve_and_no_warning(sample_frame, recwarn):
    flat = sample_frame.assign(Banking=100.0)
    fig = eda.distribution_figure(flat, "Banking")
    assert "kernel density" not in legend_texts(fig.axes[0])
    assert not [w for w in recwarn if "variance" in str(w.message)]


def test_forecast_draws_history_bands_mean_and_held_out_actuals(forecast_inputs):
    train, test, forecast = forecast_inputs
    fig = eda.forecast_figure(train, test, forecast, "Banking holdout")
    (ax,) = fig.axes
    assert ax.get_title() == "Banking holdout"
    assert legend_texts(ax) == ["training data", "95% interval", "80% interval", "forecast mean", "held-out actual"]
    np.testing.assert_allclose(line(ax, "training data").get_ydata(), train.to_numpy())
    np.testing.assert_allclose(line(ax, "forecast mean").get_ydata(), forecast["mean"].to_numpy())
    actual = line(ax, "held-out actual")
    assert actual.get_marker() == "o"
    np.testing.assert_allclose(actual.get_ydata(), test.to_numpy())
    bands = {c.get_label(): c for c in ax.collections if isinstance(c, PolyCollection)}
    for level, half_width in (("95", 20), ("80", 10)):
        vertices = bands[f"{level}% interval"].get_paths()[0].vertices[:, 1]
        assert vertices.min() == pytest.approx((forecast["mean"] - half_width).min())
        assert vertices.max() == pytest.approx((forecast["mean"] + half_width).max())


def test_forecast_without_held_out_months_or_bands(forecast_inputs):
    train, _, forecast = forecast_inputs
    fig = eda.forecast_figure(train, None, forecast[["mean"]], "future")
    assert legend_texts(fig.axes[0]) == ["training data", "forecast mean"]


def test_drawing_leaves_pyplot_and_rcparams_alone(sample_frame, forecast_inputs):
    import matplotlib.pyplot as plt

    before = dict(matplotlib.rcParams)
    figures = plt.get_fignums()
    eda.history_figure(sample_frame, "Banking")
    eda.distribution_figure(sample_frame, "Banking")
    eda.forecast_figure(*forecast_inputs, "Banking")
    assert plt.get_fignums() == figures  # no pyplot figure was created
    assert dict(matplotlib.rcParams) == before  # seaborn's style was only a temporary context


def test_write_eda_figures_names_files_by_series_key(sample_path, tmp_path, forecast_inputs):
    paths = eda.write_eda_figures(load_panel(sample_path), tmp_path / "figures", DEFAULT_QUEUES)
    expected = [tmp_path / "figures" / f"{kind}_{series_key(d)}.png" for d in DEFAULT_QUEUES
                for kind in ("history", "distribution")]
    assert paths == expected
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(p.name for p in expected)
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in paths)
    single = eda.write_forecast_figure(*forecast_inputs, "Banking", tmp_path / "forecast_Banking.png")
    assert single.read_bytes().startswith(PNG_MAGIC)


def test_figures_of_another_frequency_say_its_unit():
    """Hourly queues: every axis, title and difference is in hours, not months."""
    index = pd.date_range("2024-03-01", periods=96, freq="h", name="period")
    frame = pd.DataFrame({"Support": 50 + 10 * np.sin(np.arange(96) * 2 * np.pi / 24)}, index=index)
    hourly = calendar_for("hourly", index[0])
    (ax,) = eda.history_figure(frame, "Support", calendar=hourly).axes
    assert ax.get_title() == "Support: hourly call volume"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("hour", "calls per hour")
    axes = eda.distribution_figure(frame, "Support", calendar=hourly).axes
    assert axes[2].get_title() == "Support hour-over-hour difference: density"
    assert {a.get_xlabel() for a in axes[::2]} == {"calls per hour"}
    assert {a.get_ylabel() for a in axes[1::2]} == {"observed (calls per hour)"}
    forecast = pd.DataFrame({"mean": frame["Support"].to_numpy()[-24:]}, index=index[-24:])
    (ax,) = eda.forecast_figure(frame["Support"].iloc[:-24], None, forecast, "Support", calendar=hourly).axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("hour", "calls per hour")
