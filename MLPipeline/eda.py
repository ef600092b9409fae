"""Figures: per-domain history, density and QQ plots, and holdout forecasts with bands.

Uses matplotlib's object API (``Figure``), not pyplot, so no GUI backend or global state
is involved; figures render the same in Engine.py, the notebook and the web service.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from MLPipeline.config import DOMAINS

_DPI = 110


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    return path


def history_figure(frame: pd.DataFrame, domain: str) -> Figure:
    fig = Figure(figsize=(8, 3.2))
    ax = fig.subplots()
    ax.plot(frame.index, frame[domain], color="tab:blue", lw=1.5, label=domain)
    ax.set_title(f"{domain}: monthly call volume")
    ax.set_xlabel("month")
    ax.set_ylabel("calls per month")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return fig


def distribution_figure(frame: pd.DataFrame, domain: str) -> Figure:
    """Density (histogram + Gaussian KDE + fitted normal) and QQ plot, for levels and differences."""
    fig = Figure(figsize=(10, 6.4))
    axes = fig.subplots(2, 2)
    for row, (label, values) in enumerate(
        (("level", frame[domain].to_numpy()), ("month-over-month difference", frame[domain].diff().dropna().to_numpy()))
    ):
        density_ax, qq_ax = axes[row]
        density_ax.hist(values, bins="auto", density=True, alpha=0.35, color="tab:blue", label="histogram")
        grid = np.linspace(values.min(), values.max(), 200)
        if np.ptp(values) > 0:
            density_ax.plot(grid, stats.gaussian_kde(values)(grid), color="tab:blue", label="kernel density")
        density_ax.plot(grid, stats.norm.pdf(grid, values.mean(), values.std(ddof=1) or 1.0), "--",
                        color="tab:red", label="normal fit")
        density_ax.set_title(f"{domain} {label}: density")
        density_ax.set_xlabel("calls per month")
        density_ax.set_ylabel("density")
        density_ax.legend(fontsize=8)
        (osm, osr), (slope, intercept, _) = stats.probplot(values, dist="norm")
        qq_ax.scatter(osm, osr, s=10, color="tab:blue", label="observed quantiles")
        qq_ax.plot(osm, slope * osm + intercept, color="tab:red", label="normal line")
        qq_ax.set_title(f"{domain} {label}: normal QQ plot")
        qq_ax.set_xlabel("theoretical quantile")
        qq_ax.set_ylabel("observed (calls per month)")
        qq_ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def forecast_figure(train: pd.Series, test: pd.Series | None, forecast: pd.DataFrame, title: str) -> Figure:
    """History, held-out actuals and the forecast mean with its 80% and 95% bands."""
    fig = Figure(figsize=(8, 3.4))
    ax = fig.subplots()
    ax.plot(train.index, train.to_numpy(), color="tab:blue", lw=1.3, label="training data")
    for lab, alpha in (("95", 0.15), ("80", 0.3)):
        if f"lower_{lab}" in forecast:
            ax.fill_between(forecast.index, forecast[f"lower_{lab}"], forecast[f"upper_{lab}"],
                            color="tab:orange", alpha=alpha, lw=0, label=f"{lab}% interval")
    ax.plot(forecast.index, forecast["mean"], color="tab:orange", lw=1.6, label="forecast mean")
    if test is not None and len(test):
        ax.plot(test.index, test.to_numpy(), "o-", color="black", ms=3, lw=1, label="held-out actual")
    ax.set_title(title)
    ax.set_xlabel("month")
    ax.set_ylabel("calls per month")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return fig


def write_eda_figures(frame: pd.DataFrame, directory: Path, domains=DOMAINS) -> list[Path]:
    """history_<domain>.png and distribution_<domain>.png for every domain; returns the paths."""
    paths = []
    for d in domains:
        paths.append(_save(history_figure(frame, d), directory / f"history_{d}.png"))
        paths.append(_save(distribution_figure(frame, d), directory / f"distribution_{d}.png"))
    return paths


def write_forecast_figure(train, test, forecast, title: str, path: Path) -> Path:
    return _save(forecast_figure(train, test, forecast, title), path)
