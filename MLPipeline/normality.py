"""Normality tests on each domain's levels and first differences.

GP likelihoods assume Gaussian noise; these tests say how far the levels and the
month-over-month differences are from that, which motivates the difference model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from MLPipeline.config import DOMAINS

ALPHA = 0.05

#: name -> test function returning (statistic, p-value)
TESTS = {
    "shapiro_wilk": stats.shapiro,
    "dagostino_k2": stats.normaltest,  # D'Agostino and Pearson's K^2 (needs n >= 8)
    "jarque_bera": stats.jarque_bera,
}


def series_tests(values) -> dict[str, dict[str, float | bool]]:
    """Run every test on ``values``; ``normal`` is True when p >= 0.05."""
    x = np.asarray(values, dtype=float)
    out = {}
    for name, test in TESTS.items():
        statistic, p_value = test(x)
        out[name] = {"statistic": float(statistic), "p_value": float(p_value), "normal": bool(p_value >= ALPHA)}
    return out


def normality_table(frame: pd.DataFrame, domains=DOMAINS) -> dict[str, dict]:
    """{domain: {"level": tests, "difference": tests}} for the tidy frame."""
    return {
        d: {"level": series_tests(frame[d]), "difference": series_tests(frame[d].diff().dropna())}
        for d in domains
    }


def normality_rows(table: dict[str, dict]) -> list[dict]:
    """The table flattened to rows (domain, series, test, statistic, p_value, normal) for reports."""
    return [
        {"domain": d, "series": s, "test": t, **vals}
        for d, by_series in table.items()
        for s, tests in by_series.items()
        for t, vals in tests.items()
    ]
