"""The one place for the project's defaults: headers it recognises, limits, season, holdout, paths.

What a trained model knows (its series, regressors, frequency) is data: it travels in the manifest.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Headers of the real call-centre workbook's regressors (matched after lower-casing and removing
#: spaces) -> their clean names. These two are recognised without being declared; any others are
#: declared (``Engine.py --regressors``), never guessed.
KNOWN_REGRESSORS: dict[str, str] = {"#ofphonelines": "phone_lines", "#noofchannels": "channels"}
#: Header names (same matching) that mark the period, series-id and value columns of a table.
PERIOD_HEADERS: tuple[str, ...] = ("month", "ds", "date", "period", "time", "timestamp")
ID_HEADERS: tuple[str, ...] = ("unique_id", "series_id", "series", "domain", "queue", "id")
VALUE_HEADERS: tuple[str, ...] = ("y", "calls", "value", "volume", "count")
#: Names a regressor may not have: they are fields of the API's requests.
RESERVED_NAMES = frozenset(("month", "domain", "domains", "level", "kind", "instances", "value", "horizon",
                            "regressors", "observations", "series", "predict", "fitted"))
MAX_SERIES_ID_LENGTH = 200  # characters; also the prediction log's column width
MAX_VOLUME = 1e12  # largest value accepted in the data and by the API (larger ones are typos)

#: Bounds on reading one data file (MLPipeline.readers); the environment variables raise them.
MAX_INPUT_BYTES = int(os.environ.get("CALLCENTER_MAX_INPUT_BYTES", 256 * 2**20))  # file; .xlsx: uncompressed
MAX_INPUT_CELLS = int(os.environ.get("CALLCENTER_MAX_INPUT_CELLS", 20_000_000))  # non-empty cells
MAX_READ_SECONDS = float(os.environ.get("CALLCENTER_MAX_READ_SECONDS", 300))  # reading one sheet

#: Model kinds trained and served: a GP on the level, a GP on month-over-month differences, and
#: the ensemble: the median of the level GP, a Box–Cox level GP, damped-trend ETS and Theta
#: (see MLPipeline.forecaster).
KINDS: tuple[str, ...] = ("level", "difference", "ensemble")

SEASON_LENGTH = 12  # months in a year: the periodic component and MASE scaling
HOLDOUT_MONTHS = 12  # last months held out for evaluation by default
MIN_MONTHS = 24  # shortest series the loader and forecaster accept
#: Longest training window per series: the exact GP's cost grows with the cube of the length, and
#: 20 years of months fit in about a second; longer series train on their most recent months.
MAX_TRAIN_MONTHS = 240
#: Longest series the state-space GP (MLPipeline.statespace) fits: its cost grows linearly, and this
#: many points (two years of hours, a year of half-hours) keep one fit to about a minute on two cores
#: (docs/benchmarks.md); longer series are fitted on their most recent points, and the log says so.
MAX_STATESPACE_POINTS = 20_000
DEFAULT_LEVELS: tuple[float, ...] = (80.0, 95.0)  # prediction-interval levels, percent
MONTH_FREQ = "MS"  # months are held as month-start timestamps internally

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_PATH = PROJECT_ROOT / "Input" / "CallCenterData.xlsx"
DEFAULT_OUTPUT_DIR = PROJECT_ROOT / "Output"
#: The real third-party workbook lives beside the project, never inside it.
SHARED_DATA_PATH = PROJECT_ROOT.parent / "shared" / "data" / "CallCenterData.xlsx"

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 3  # 2: series, regressors and frequency come from the data; 3: month tables, model facts


def output_dir() -> Path:
    """The model directory: ``$OUTPUT_DIR`` or ``Output/`` beside this package."""
    return Path(os.environ.get("OUTPUT_DIR") or DEFAULT_OUTPUT_DIR)
