"""Figures: per-domain history, density and QQ plots, and holdout forecasts with bands.

Drawn with seaborn on matplotlib's object API: each function builds its own ``Figure`` and hands
seaborn the axes, so no pyplot figure is ever registered and no global style is set (seaborn's
look applies only while the axes are made); figures render the same in Engine.py, the notebook
and the web service (service.charts relabels this module's legend entries for the dashboard).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from scipy import stats

from MLPipeline.calendars import MONTHLY, Calendar

_DPI = 110
_STYLE = "whitegrid"
#: Colour-blind-safe colours for the data, the forecast and the reference (normal) curves.
_PALETTE = sns.color_palette("colorblind")
_DATA, _FORECAST, _REFERENCE, _ACTUAL = _PALETTE[0], _PALETTE[1], _PALETTE[3], "black"


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    return path


def _styled(draw):
    """Run ``draw`` in seaborn's style: a temporary rc context, so nothing outside it changes."""

    @functools.wraps(draw)
    def styled(*args, **kwargs) -> Figure:
        with sns.axes_style(_STYLE):
            return draw(*args, **kwargs)

    return styled


@_styled
def history_figure(frame: pd.DataFrame, domain: str, *, calendar: Calendar = MONTHLY) -> Figure:
    fig = Figure(figsize=(8, 3.2))
    ax = fig.subplots()
    sns.lineplot(x=frame.index, y=frame[domain].to_numpy(), ax=ax, color=_DATA, linewidth=1.5, label=domain,
                 errorbar=None)
    ax.set_title(f"{domain}: {calendar.frequency} call volume")
    _label_axes(ax, calendar)
    ax.legend(loc="upper left")
    return fig


@_styled
def distribution_figure(frame: pd.DataFrame, domain: str, *, calendar: Calendar = MONTHLY) -> Figure:
    """Density (histogram + Gaussian KDE + fitted normal) and QQ plot, for levels and differences."""
    fig = Figure(figsize=(10, 6.4))
    axes = fig.subplots(2, 2)
    unit = calendar.unit
    for row, (label, values) in enumerate(
        (("level", frame[domain].to_numpy()), (f"{unit}-over-{unit} difference", frame[domain].diff().dropna().to_numpy()))
    ):
        density_ax, qq_ax = axes[row]
        sns.histplot(values, stat="density", bins="auto", alpha=0.35, color=_DATA, edgecolor="white",
                     label="histogram", ax=density_ax)
        if np.ptp(values) > 0:  # a constant series has no density to estimate
            sns.kdeplot(values, color=_DATA, label="kernel density", ax=density_ax)
        grid = np.linspace(values.min(), values.max(), 200)
        density_ax.plot(grid, stats.norm.pdf(grid, values.mean(), values.std(ddof=1) or 1.0), "--",
                        color=_REFERENCE, label="normal fit")
        density_ax.set_title(f"{domain} {label}: density")
        density_ax.set_xlabel(f"calls per {unit}")
        density_ax.set_ylabel("density")
        density_ax.legend(fontsize=8)
        (osm, osr), (slope, intercept, _) = stats.probplot(values, dist="norm")
        sns.scatterplot(x=osm, y=osr, s=14, color=_DATA, edgecolor="none", label="observed quantiles", ax=qq_ax)
        qq_ax.plot(osm, slope * osm + intercept, color=_REFERENCE, label="normal line")
        qq_ax.set_title(f"{domain} {label}: normal QQ plot")
        qq_ax.set_xlabel("theoretical quantile")
        qq_ax.set_ylabel(f"observed (calls per {unit})")
        qq_ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@_styled
def forecast_figure(train: pd.Series, test: pd.Series | None, forecast: pd.DataFrame, title: str, *,
                    calendar: Calendar = MONTHLY) -> Figure:
    """History, held-out actuals and the forecast mean with its 80% and 95% bands."""
    fig = Figure(figsize=(8, 3.4))
    ax = fig.subplots()
    sns.lineplot(x=train.index, y=train.to_numpy(), ax=ax, color=_DATA, linewidth=1.3, label="training data",
                 errorbar=None)
    for lab, alpha in (("95", 0.15), ("80", 0.3)):
        if f"lower_{lab}" in forecast:
            ax.fill_between(forecast.index, forecast[f"lower_{lab}"], forecast[f"upper_{lab}"],
                            color=_FORECAST, alpha=alpha, lw=0, label=f"{lab}% interval")
    sns.lineplot(x=forecast.index, y=forecast["mean"].to_numpy(), ax=ax, color=_FORECAST, linewidth=1.6,
                 label="forecast mean", errorbar=None)
    if test is not None and len(test):
        sns.lineplot(x=test.index, y=test.to_numpy(), ax=ax, color=_ACTUAL, marker="o", markersize=4,
                     markeredgecolor=_ACTUAL, linewidth=1, label="held-out actual", errorbar=None)
    ax.set_title(title)
    _label_axes(ax, calendar)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def _label_axes(ax, calendar: Calendar) -> None:
    ax.set_xlabel(calendar.unit)
    ax.set_ylabel(f"calls per {calendar.unit}")


def write_eda_figures(panel, directory: Path, ids) -> list[Path]:
    """history_<key>.png and distribution_<key>.png for the series ``ids`` of a Panel (files are
    named by MLPipeline.artifacts.series_key, never by the raw id); returns the paths."""
    from MLPipeline.artifacts import series_key

    paths = []
    for sid in ids:
        y, _ = panel[sid].to_pandas(calendar=panel.calendar)
        frame = y.to_frame(sid)
        key = series_key(sid)
        paths.append(_save(history_figure(frame, sid, calendar=panel.calendar), directory / f"history_{key}.png"))
        paths.append(_save(distribution_figure(frame, sid, calendar=panel.calendar),
                           directory / f"distribution_{key}.png"))
    return paths


def write_forecast_figure(train, test, forecast, title: str, path: Path, *, calendar: Calendar = MONTHLY) -> Path:
    return _save(forecast_figure(train, test, forecast, title, calendar=calendar), path)
