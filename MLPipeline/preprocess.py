"""Time-ordered train/test split (the forecaster turns months into its own time index)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from MLPipeline.config import HOLDOUT_MONTHS, MIN_MONTHS
from MLPipeline.data import DataError


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
