"""Load and validate the call-centre workbook into a tidy monthly frame.

The workbook's original headers are mapped to clean names here and nowhere else.
Every problem is reported as a :class:`DataError` whose message names the column and,
where there is one, the spreadsheet row (header = row 1).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from MLPipeline.config import DOMAINS, HEADER_MAP, MIN_MONTHS, MONTH_FREQ, REGRESSORS
from MLPipeline.months import format_month, month_ordinal, parse_month

SUPPORTED_SUFFIXES = (".xlsx", ".xlsm", ".csv")
VALUE_COLUMNS: tuple[str, ...] = DOMAINS + REGRESSORS


class DataError(ValueError):
    """The input data cannot be used; the message says what to fix."""


def _header_key(name) -> str:
    return "".join(str(name).split()).lower()


def _sheet_row(position: int) -> int:
    """Spreadsheet row number of the data row at 0-based ``position`` (row 1 is the header)."""
    return position + 2


def read_raw(path: str | Path) -> pd.DataFrame:
    """Read the first sheet (or the CSV) as-is, every cell as an object."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if path.is_dir():
        raise DataError(f"data path is a directory, not a file: {path}")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"unsupported file type {suffix or '(none)'!r} for {path.name}; use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if path.stat().st_size == 0:
        raise DataError(f"data file is empty: {path}")
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=object, skip_blank_lines=True)
        return pd.read_excel(path, sheet_name=0, dtype=object, engine="openpyxl")
    except pd.errors.EmptyDataError:
        raise DataError(f"data file has no rows: {path}") from None
    except Exception as exc:  # openpyxl/zipfile raise many types for a damaged file
        raise DataError(f"could not read {path.name} as {suffix[1:].upper()}: {exc}") from None


def _rename_columns(raw: pd.DataFrame) -> pd.DataFrame:
    renamed: dict[str, str] = {}
    for col in raw.columns:
        clean = HEADER_MAP.get(_header_key(col))
        if clean is None:
            continue  # extra columns are allowed and ignored
        if clean in renamed.values():
            raise DataError(f"column {clean!r} appears more than once in the header")
        renamed[col] = clean
    missing = [c for c in ("month",) + VALUE_COLUMNS if c not in renamed.values()]
    if missing:
        raise DataError(
            "missing required column(s): "
            + ", ".join(missing)
            + f" (found: {', '.join(map(str, raw.columns))})"
        )
    return raw[list(renamed)].rename(columns=renamed)


def _parse_months(column: pd.Series) -> pd.DatetimeIndex:
    months = []
    for pos, value in enumerate(column):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            raise DataError(f"missing value in column 'month' at row {_sheet_row(pos)}")
        try:
            months.append(parse_month(value if not isinstance(value, int | float) else str(value)))
        except ValueError as exc:
            raise DataError(f"row {_sheet_row(pos)}, column 'month': {exc}") from None
    return pd.DatetimeIndex(months, name="month")


def _parse_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for col in VALUE_COLUMNS:
        values = np.empty(len(frame))
        for pos, value in enumerate(frame[col]):
            if value is None or (isinstance(value, float) and np.isnan(value)) or (
                isinstance(value, str) and not value.strip()
            ):
                raise DataError(f"missing value in column {col!r} at row {_sheet_row(pos)}")
            if isinstance(value, bool):
                raise DataError(f"non-numeric value {value!r} in column {col!r} at row {_sheet_row(pos)}")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise DataError(
                    f"non-numeric value {value!r} in column {col!r} at row {_sheet_row(pos)}"
                ) from None
            if not np.isfinite(number):
                raise DataError(f"non-finite value {value!r} in column {col!r} at row {_sheet_row(pos)}")
            if number < 0:
                raise DataError(f"negative value {number:g} in column {col!r} at row {_sheet_row(pos)}")
            values[pos] = number
        out[col] = values
    return pd.DataFrame(out)


def validate_frame(raw: pd.DataFrame, *, min_months: int = MIN_MONTHS) -> pd.DataFrame:
    """Validate a raw frame (original headers) and return the tidy frame.

    Returns a DataFrame indexed by month-start timestamps (``freq='MS'``, name ``month``),
    sorted, with float columns ``DOMAINS + REGRESSORS``.
    """
    raw = raw.dropna(how="all")
    if raw.empty:
        raise DataError("the data has a header but no data rows")
    frame = _rename_columns(raw).reset_index(drop=True)
    months = _parse_months(frame["month"])
    values = _parse_numbers(frame)
    values.index = months

    duplicated = months[months.duplicated()]
    if len(duplicated):
        first = duplicated[0]
        rows = [_sheet_row(i) for i in np.flatnonzero(months == first)]
        raise DataError(f"duplicate month {format_month(first)} at rows {', '.join(map(str, rows))}")

    values = values.sort_index()
    ordinals = np.array([month_ordinal(m) for m in values.index])
    gaps = np.flatnonzero(np.diff(ordinals) != 1)
    if len(gaps):
        before, after = values.index[gaps[0]], values.index[gaps[0] + 1]
        raise DataError(
            f"gap in the monthly sequence: {format_month(before)} is followed by {format_month(after)}"
            f" ({int(ordinals[gaps[0] + 1] - ordinals[gaps[0]] - 1)} month(s) missing)"
        )
    if len(values) < min_months:
        raise DataError(f"need at least {min_months} months of data, got {len(values)}")
    values.index = pd.DatetimeIndex(values.index, freq=MONTH_FREQ, name="month")
    return values


def load_workbook(path: str | Path, *, min_months: int = MIN_MONTHS) -> pd.DataFrame:
    """Load ``path`` (.xlsx/.xlsm/.csv) and return the validated tidy frame (see :func:`validate_frame`)."""
    return validate_frame(read_raw(path), min_months=min_months)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def frame_sha256(frame: pd.DataFrame) -> str:
    """A content hash of the tidy frame: same data, same hash, whatever the file format."""
    payload = frame.to_csv(float_format="%.10g").encode()
    return hashlib.sha256(payload).hexdigest()
