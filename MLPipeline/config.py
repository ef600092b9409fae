"""The one place for the project's facts: domains, regressors, season, holdout, paths.

Everything else imports these names instead of repeating the strings.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Call-centre domains, in workbook order; each is one monthly volume column.
DOMAINS: tuple[str, ...] = ("Healthcare", "Telecom", "Banking", "Technology", "Insurance")

#: Clean regressor names used inside the code and on the wire.
REGRESSORS: tuple[str, ...] = ("phone_lines", "channels")

#: Workbook header -> clean name. Headers are matched after lower-casing and removing
#: spaces, so "Month", " #of phone lines " and "#OFPHONELINES" all map.
HEADER_MAP: dict[str, str] = {
    "month": "month",
    **{d.lower(): d for d in DOMAINS},
    "#ofphonelines": "phone_lines",
    "#noofchannels": "channels",
}

#: The workbook's original header for each clean name (used when writing workbooks).
ORIGINAL_HEADERS: dict[str, str] = {
    "month": "month",
    **{d: d for d in DOMAINS},
    "phone_lines": "#ofphonelines",
    "channels": "#noofchannels",
}

#: Model kinds trained and served: a GP on the level, a GP on month-over-month differences, and
#: the ensemble: the median of the level GP, a Box–Cox level GP, damped-trend ETS and Theta
#: (see MLPipeline.forecaster).
KINDS: tuple[str, ...] = ("level", "difference", "ensemble")

SEASON_LENGTH = 12  # months in a year: the periodic component and MASE scaling
HOLDOUT_MONTHS = 12  # last months held out for evaluation by default
MIN_MONTHS = 24  # shortest series the loader and forecaster accept
DEFAULT_LEVELS: tuple[float, ...] = (80.0, 95.0)  # prediction-interval levels, percent
MONTH_FREQ = "MS"  # months are held as month-start timestamps internally

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_PATH = PROJECT_ROOT / "Input" / "CallCenterData.xlsx"
DEFAULT_OUTPUT_DIR = PROJECT_ROOT / "Output"
#: The real third-party workbook lives beside the project, never inside it.
SHARED_DATA_PATH = PROJECT_ROOT.parent / "shared" / "data" / "CallCenterData.xlsx"

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1


def output_dir() -> Path:
    """The model directory: ``$OUTPUT_DIR`` or ``Output/`` beside this package."""
    return Path(os.environ.get("OUTPUT_DIR") or DEFAULT_OUTPUT_DIR)
