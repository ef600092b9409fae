"""Normality tests on each series' levels and first differences.

GP likelihoods assume Gaussian noise; these tests say how far the levels and the
month-over-month differences are from that, which motivates the difference model.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

ALPHA = 0.05

#: name -> test function returning (statistic, p-value)
TESTS = {
    "shapiro_wilk": stats.shapiro,
    "dagostino_k2": stats.normaltest,  # D'Agostino and Pearson's K^2 (needs n >= 8)
    "jarque_bera": stats.jarque_bera,
}


def series_tests(values) -> dict[str, dict[str, float | bool | None]]:
    """Run every test on ``values``; ``normal`` is True when p >= 0.05.

    A constant series has no distribution to test (the statistics divide by its zero spread):
    every entry is then None, with the reason in ``note``.
    """
    x = np.asarray(values, dtype=float)
    out = {}
    for name, test in TESTS.items():
        statistic, p_value = (np.nan, np.nan) if np.ptp(x) == 0 else test(x)
        if not (np.isfinite(statistic) and np.isfinite(p_value)):
            out[name] = {"statistic": None, "p_value": None, "normal": None,
                         "note": "constant: not testable" if np.ptp(x) == 0 else "undefined for these values"}
            continue
        out[name] = {"statistic": float(statistic), "p_value": float(p_value), "normal": bool(p_value >= ALPHA)}
    return out


def normality_table(panel) -> dict[str, dict]:
    """{series id: {"level": tests, "difference": tests}} for a Panel (MLPipeline.panel)."""
    return {s.id: {"level": series_tests(s.y), "difference": series_tests(np.diff(s.y))} for s in panel}
