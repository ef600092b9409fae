"""Prediction-interval levels and the column names every model's predictions share.

Each model's array path returns ``(n, 2 + 2 * levels)`` arrays whose columns are
:func:`interval_columns`: mean, std, then lower/upper for each level; levels are validated once, here.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np


def level_label(level: float) -> str:
    """Column suffix for an interval level: 80 -> '80', 97.5 -> '97.5'."""
    return f"{float(level):g}"


def interval_columns(levels: Iterable[float]) -> list[str]:
    """``['mean', 'std', 'lower_80', 'upper_80', ...]`` for the given levels."""
    cols = ["mean", "std"]
    for lv in levels:
        cols += [f"lower_{level_label(lv)}", f"upper_{level_label(lv)}"]
    return cols


def check_levels(level) -> tuple[float, ...]:
    """Validate interval levels (percent, each strictly between 0 and 100)."""
    values = (level,) if isinstance(level, numbers.Real) else tuple(level)
    if not values:
        raise ValueError("level must name at least one interval level, e.g. level=(80, 95)")
    out = []
    for lv in values:
        if isinstance(lv, bool) or not isinstance(lv, numbers.Real) or not np.isfinite(lv):
            raise ValueError(f"level {lv!r} is not a number; use percentages such as 80 or 95")
        if not 0 < lv < 100:
            raise ValueError(f"level {lv!r} is outside (0, 100); use percentages such as 80 or 95")
        out.append(float(lv))
    return tuple(out)


def conformal_quantile(scores, level: float) -> float:
    """Split-conformal quantile of nonconformity ``scores`` for a ``level`` % interval.

    The ceil((n + 1) * level / 100)-th smallest of the n scores: with exchangeable scores a new one
    falls at or below it with probability at least ``level`` % (the (n + 1) finite-sample
    correction; a plain empirical quantile undercovers by about 1 / n). When n is too small for
    that order statistic to exist the guarantee is unattainable and the largest score is returned.
    """
    values = np.sort(np.asarray(scores, dtype=float))
    if not len(values):
        raise ValueError("conformal_quantile needs at least one score")
    rank = int(np.ceil((len(values) + 1) * level / 100.0 - 1e-9))
    return float(values[min(max(rank, 1), len(values)) - 1])


#: The levels at which SHORT_SERIES_WIDENING is given (a factor between them is interpolated, one
#: outside them is the nearest one's).
SHORT_SERIES_LEVELS = (20.0, 40.0, 60.0, 80.0, 95.0)
#: Factors on the default ensemble's interval half-widths for a series too short for all of its
#: calibration's yearly origins, by how many origins it had (0 or 1; with 2 or more it needs none).
#: Its one calibrated member then saw a year of errors or none, and the median of the four members'
#: bounds undercovers. Learned by bench/short_series.py on series cut short from the M3 development
#: subset: the quantile of the |error| / half-width ratios that reaches each level, floored at 1.
SHORT_SERIES_WIDENING: dict[int, tuple[float, ...]] = {
    0: (1.180, 1.205, 1.256, 1.352, 1.650),
    1: (1.0, 1.0, 1.073, 1.129, 1.275),
}


def short_series_factor(origins: int, level: float) -> float:
    """The widening of a ``level`` % interval for a series whose calibration had ``origins`` origins."""
    factors = SHORT_SERIES_WIDENING.get(int(origins))
    return 1.0 if factors is None else float(np.interp(level, SHORT_SERIES_LEVELS, factors))


def widen_interval(mean, lower, upper, factor: float, floor: float = -np.inf):
    """``lower`` and ``upper`` with their distances from ``mean`` scaled by ``factor``; lower bounds not
    below ``floor`` (0 for counts)."""
    return np.maximum(mean - factor * (mean - lower), floor), mean + factor * (upper - mean)
