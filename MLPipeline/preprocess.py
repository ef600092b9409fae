"""Time index and time-ordered train/test split."""

from __future__ import annotations

import numpy as np
import pandas as pd

from MLPipeline.config import HOLDOUT_MONTHS, MIN_MONTHS, SEASON_LENGTH
from MLPipeline.data import DataError
from MLPipeline.months import month_ordinal


def time_index(months: pd.DatetimeIndex, origin: pd.Timestamp | None = None) -> np.ndarray:
    """Months -> years since ``origin`` (default: the first month) as floats: 0, 1/12, 2/12, ..."""
    first = month_ordinal(origin if origin is not None else months[0])
    return (np.array([month_ordinal(m) for m in months], dtype=float) - first) / SEASON_LENGTH


def train_test_split(frame: pd.DataFrame, holdout: int = HOLDOUT_MONTHS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a tidy frame in time: all but the last ``holdout`` months, and those months."""
    if isinstance(holdout, bool) or not isinstance(holdout, int | np.integer) or holdout < 1:
        raise DataError(f"holdout must be a whole number of months >= 1, got {holdout!r}")
    if len(frame) - holdout < MIN_MONTHS:
        raise DataError(
            f"holdout of {holdout} months leaves {len(frame) - holdout} training months; "
            f"need at least {MIN_MONTHS} (the data has {len(frame)})"
        )
    return frame.iloc[:-holdout], frame.iloc[-holdout:]
