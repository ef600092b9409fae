"""Time-ordered splits per series: training months and the held-out months after them."""

from __future__ import annotations

import numbers

from MLPipeline.config import MIN_MONTHS
from MLPipeline.panel import Series
from MLPipeline.readers import DataError


def check_holdout(holdout) -> int:
    """A holdout must be a whole number of periods >= 1 (DataError otherwise)."""
    if isinstance(holdout, bool) or not isinstance(holdout, numbers.Integral) or holdout < 1:
        raise DataError(f"holdout must be a whole number of periods >= 1, got {holdout!r}")
    return int(holdout)


def split(series: Series, holdout: int, min_train: int = MIN_MONTHS) -> tuple[Series, Series | None]:
    """(training periods, held-out periods), or (all periods, None) when holding out ``holdout`` would
    leave fewer than ``min_train`` to train on: such a series is served but not evaluated."""
    n_train = len(series) - holdout
    if n_train < min_train:
        return series, None
    return series.head(n_train), series.tail_from(n_train)
