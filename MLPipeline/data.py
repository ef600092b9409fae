"""Load and validate a data file into a :class:`~MLPipeline.panel.Panel`: the data decides the series.

Two layouts, detected from the header (or forced with ``layout``):

* **wide** — a period column and one column per queue (any number, any names), plus regressor columns;
* **long** — one row per (series, period): a series-id column, a period column and a value column
  (Nixtla's ``unique_id, ds, y``, or readable names such as ``domain, month, calls``), plus regressor
  columns.

Regressors are declared by name (``regressors=[...]``); the call-centre workbook's two
(``#ofphonelines``, ``#noofchannels``) are recognised by their headers. Original headers are mapped
to clean names here and nowhere else. Each series runs from its first to its last value (queues may
start and stop at different months); a missing month inside a series is an error.

Every problem is a :class:`DataError` whose message names the file, the row (spreadsheet numbering,
header = row 1 unless the sheet has blank rows above it), the column and, where it matters, the series.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from MLPipeline.calendars import MONTHLY, Calendar, calendar_for
from MLPipeline.config import (
    ID_HEADERS,
    KNOWN_REGRESSORS,
    MAX_SERIES_ID_LENGTH,
    MAX_VOLUME,
    MIN_MONTHS,
    PERIOD_HEADERS,
    RESERVED_NAMES,
    VALUE_HEADERS,
)
from MLPipeline.frequency import FREQUENCIES, FrequencyError, detect_frequency, parse_timestamps
from MLPipeline.months import format_ordinal
from MLPipeline.panel import Panel, Series
from MLPipeline.periods import PeriodError, days_per_month, month_ordinals
from MLPipeline.readers import DataError, RawTable, read_table

__all__ = ["DataError", "LAYOUTS", "clean_name", "load_panel", "load_workbook", "panel_from_table"]

LAYOUTS = ("wide", "long")
_CLEAN = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _key(name) -> str:
    return "".join(str(name).split()).lower()


def _text(header) -> str:
    """A header cell as text: numbers as written (101, not 101.0), dates as YYYY-MM-DD."""
    if isinstance(header, float) and header.is_integer():
        return str(int(header))
    if isinstance(header, pd.Timestamp):
        return header.strftime("%Y-%m-%d")
    return str(header).strip()


def clean_name(header) -> str:
    """The name a regressor has inside the code and on the wire: the call-centre workbook's own
    mapping, else lower case with runs of other characters as ``_`` ("Staff On Duty" -> staff_on_duty)."""
    key = _key(header)
    if key in KNOWN_REGRESSORS:
        return KNOWN_REGRESSORS[key]
    return re.sub(r"[^a-z0-9]+", "_", str(header).strip().lower()).strip("_")


def _known(header) -> bool:
    """A header of the call-centre workbook's regressors, original or clean (phone_lines)."""
    return _key(header) in KNOWN_REGRESSORS or _key(header) in KNOWN_REGRESSORS.values()


def _column_letter(position: int) -> str:
    letters, n = "", position + 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


class _Table:
    """A RawTable with the lookups validation needs and the error wording in one place."""

    def __init__(self, raw: RawTable):
        self.raw = raw
        self.headers = [_text(h) for h in raw.headers]
        for i, header in enumerate(self.headers):
            if not header or header.lower() == "nan":
                raise DataError(f"{self.where()}column {_column_letter(i)} has no header (row {raw.header_row})")
        self.by_text: dict[str, int] = {}
        for i, header in enumerate(self.headers):
            if header in self.by_text:
                raise DataError(f"{self.where()}column {header!r} appears more than once in the header "
                                f"(columns {_column_letter(self.by_text[header])} and {_column_letter(i)})")
            self.by_text[header] = i

    def where(self) -> str:
        sheet = f" (sheet {self.raw.sheet!r})" if self.raw.sheet else ""
        return f"{self.raw.source}{sheet}: "

    def fail(self, message: str) -> DataError:
        return DataError(self.where() + message)

    def find(self, names: Sequence[str], given: str | None, what: str, flag: str) -> int | None:
        """Position of the column ``given`` names (header text or key), else the first header in ``names``."""
        if given is not None:
            for i, header in enumerate(self.headers):
                if header == given or _key(header) == _key(given):
                    return i
            raise self.fail(f"no {what} column {given!r}; the header has: {self.listing()}")
        for i, header in enumerate(self.headers):
            if _key(header) in names:
                return i
        return None

    def listing(self) -> str:
        shown = ", ".join(map(repr, self.headers[:12]))
        return shown + (f" and {len(self.headers) - 12} more" if len(self.headers) > 12 else "")

    def column(self, position: int) -> np.ndarray:
        return self.raw.cells[position].to_numpy(dtype=object)

    def row(self, index: int) -> int:
        return int(self.raw.rows[index])


# ------------------------------------------------------------------------ cells


def _missing_mask(values: np.ndarray) -> np.ndarray:
    return np.array([v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip())
                     for v in values], dtype=bool)


_GROUPED_POINT = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")
_GROUPED_COMMA = re.compile(r"^[-+]?\d{1,3}(\.\d{3})+(,\d+)?$")
_PLAIN_COMMA = re.compile(r"^[-+]?\d+(,\d+)?$")


def _number_text(text: str, decimal_comma: bool) -> str | None:
    """Text of a number in the file's convention as Python reads it, or None if it breaks it."""
    text = text.strip().replace("\u00a0", "").replace(" ", "")
    if decimal_comma:
        if _GROUPED_COMMA.match(text):
            return text.replace(".", "").replace(",", ".")
        if _PLAIN_COMMA.match(text):
            return text.replace(",", ".")
        return None if "." in text and "e" not in text.lower() else text
    if _GROUPED_POINT.match(text):
        return text.replace(",", "")
    return text


def _numbers(table: _Table, position: int, rows: np.ndarray, label: str, series: str | None = None) -> np.ndarray:
    """Floats of column ``position`` at data rows ``rows``: finite, >= 0, <= MAX_VOLUME; else DataError.

    ``label`` names the column in messages (the clean regressor name, or the header).
    """
    raw = table.column(position)[rows]
    out = np.empty(len(raw))
    of = f" (series {series!r})" if series is not None and series != label else ""
    for i, value in enumerate(raw):
        row = table.row(rows[i])
        if value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and not value.strip()):
            raise table.fail(f"missing value in column {label!r} at row {row}{of}")
        if isinstance(value, bool | pd.Timestamp) or hasattr(value, "year"):
            raise table.fail(f"non-numeric value {value!r} in column {label!r} at row {row}{of}")
        if isinstance(value, str):
            text = _number_text(value, table.raw.decimal_comma)
            if text is None:
                raise table.fail(
                    f"value {value!r} in column {label!r} at row {row}{of} mixes separators: this ';'-separated "
                    "file is read with decimal commas (12,5) and optional '.' thousands (1.234,5)")
            try:
                number = float(text)
            except ValueError:
                raise table.fail(f"non-numeric value {value!r} in column {label!r} at row {row}{of}") from None
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise table.fail(f"non-numeric value {value!r} in column {label!r} at row {row}{of}") from None
        if not np.isfinite(number):
            raise table.fail(f"non-finite value {value!r} in column {label!r} at row {row}{of}")
        if number < 0:
            raise table.fail(f"negative value {number:g} in column {label!r} at row {row}{of}")
        if number > MAX_VOLUME:
            raise table.fail(f"value {number:g} in column {label!r} at row {row}{of} is larger than "
                             f"{MAX_VOLUME:g}, the largest accepted")
        out[i] = number
    return out


def _month_ordinals(table: _Table, position: int, rows: np.ndarray) -> np.ndarray:
    values = table.column(position)[rows]
    try:
        ordinals, present = month_ordinals(values)
    except PeriodError as exc:
        raise table.fail(f"row {table.row(rows[exc.position])}, column {table.headers[position]!r}: {exc}") from None
    if not present.all():
        first = int(np.flatnonzero(~present)[0])
        raise table.fail(f"missing value in column {table.headers[position]!r} at row {table.row(rows[first])}")
    return ordinals


def _several_a_month(table: _Table, position: int, ordinals: np.ndarray, groups: dict[str, np.ndarray]) -> bool:
    """Whether some series has several periods in one month that are not one date typed twice."""
    for rows in groups.values():
        months = ordinals[rows]
        distinct = len(np.unique(months))
        if distinct == len(months):
            continue
        values = table.column(position)[rows]
        if days_per_month(values, np.ones(len(values), dtype=bool)) > 1 or len(set(map(str, values))) > distinct:
            return True
    return False


def _frequency_of(stamps: dict[str, np.ndarray], declared: str | None) -> str:
    """The series' frequency as their timestamps say; when that fails and one was declared, the
    failure is told in the declared frequency's terms."""
    try:
        return detect_frequency(stamps)
    except FrequencyError:
        if declared is None:
            raise
        return detect_frequency(stamps, expected=declared)


def _period_ordinals(table: _Table, position: int, groups: dict[str, np.ndarray],
                     frequency: str | None) -> tuple[np.ndarray, Calendar]:
    """Ordinals of the period column (all rows) and the calendar they count in.

    Months are read by :func:`MLPipeline.periods.month_ordinals` (every export's way of writing one);
    a column with several periods a month, or ISO timestamps that are no months, is read as UTC
    timestamps and its frequency told from them (or checked against ``frequency``).
    """
    rows = np.arange(len(table.raw.cells))
    header = table.headers[position]
    not_months = None  # why the column is no months, said if it is no timestamps either
    if frequency in (None, "monthly"):
        try:
            ordinals = _month_ordinals(table, position, rows)
            if not _several_a_month(table, position, ordinals, groups):
                return ordinals, MONTHLY
        except DataError as exc:
            if frequency == "monthly":
                raise
            not_months = exc
    where = f"column {header!r}" + (f" (--freq {frequency})" if frequency else "")
    try:
        stamps = parse_timestamps(table.column(position))
    except FrequencyError as exc:
        if not_months is not None:
            raise not_months from None
        raise table.fail(f"{where}: {exc}") from None
    try:
        name = _frequency_of({sid: stamps[r] for sid, r in groups.items()}, frequency)
    except FrequencyError as exc:
        raise table.fail(f"{where}: {exc}") from None
    if frequency not in (None, name):
        raise table.fail(f"column {header!r} holds {name} data, but --freq says {frequency}")
    calendar = calendar_for(name, stamps[0])
    return calendar.ordinals(stamps), calendar


def _duplicates(table: _Table, position: int, ordinals: np.ndarray, rows: np.ndarray, series: str | None,
                groups: dict[str, np.ndarray] | None = None) -> None:
    order = np.argsort(ordinals, kind="stable")
    same = np.flatnonzero(np.diff(ordinals[order]) == 0)
    if not len(same):
        return
    month = ordinals[order[same[0]]]
    at = ", ".join(str(table.row(rows[i])) for i in np.flatnonzero(ordinals == month))
    of = f" for series {series!r}" if series is not None else ""
    raise table.fail(f"duplicate month {format_ordinal(month)}{of} at rows {at}")


def _gaps(table: _Table, ordinals: np.ndarray, series: str | None, calendar: Calendar = MONTHLY) -> None:
    """``ordinals`` sorted; every step must be one period."""
    steps = np.diff(ordinals)
    bad = np.flatnonzero(steps != 1)
    if len(bad):
        before, after = ordinals[bad[0]], ordinals[bad[0] + 1]
        of = f"series {series!r}: " if series is not None else ""
        raise table.fail(f"{of}gap in the {calendar.frequency} sequence: {calendar.label(before)} is followed by "
                         f"{calendar.label(after)} ({int(after - before - 1)} {calendar.unit}(s) missing)")


def _series_id(table: _Table, value, where: str) -> str:
    text = _text(value)
    if not text:
        raise table.fail(f"empty series id {where}")
    if len(text) > MAX_SERIES_ID_LENGTH:
        raise table.fail(f"series id {text[:40]!r}... {where} has {len(text)} characters; at most "
                         f"{MAX_SERIES_ID_LENGTH} are allowed")
    if _CONTROL.search(text):
        raise table.fail(f"series id {text!r} {where} contains a control character")
    return text


# ------------------------------------------------------------------- regressors


def _regressor_columns(table: _Table, declared: Sequence[str] | None, taken: set[int]) -> dict[str, int]:
    """Clean regressor name -> column position: the declared ones, else the recognised ones."""
    found: dict[str, int] = {}
    if declared is None:
        for i, header in enumerate(table.headers):
            if i not in taken and _known(header):
                found[clean_name(header)] = i
        return found
    for name in declared:
        matches = [i for i, h in enumerate(table.headers)
                   if h == name or _key(h) == _key(name) or clean_name(h) == clean_name(name)]
        if not matches:
            raise table.fail(f"no regressor column {name!r}; the header has: {table.listing()}")
        position = matches[0]
        if position in taken:
            raise table.fail(f"column {table.headers[position]!r} cannot be a regressor: it is the period, "
                             "id or value column")
        clean = clean_name(table.headers[position])
        if not _CLEAN.match(clean) or clean in RESERVED_NAMES:
            raise table.fail(
                f"regressor {table.headers[position]!r} would be called {clean!r} in the API, which is "
                f"{'reserved' if clean in RESERVED_NAMES else 'not a usable name'}; rename the column "
                "(letters, digits and _ , starting with a letter)")
        if clean in found:
            raise table.fail(f"two regressor columns are both called {clean!r} once cleaned")
        found[clean] = position
    return found


# ---------------------------------------------------------------------- layouts


def _wide(table: _Table, period: int, regressors: dict[str, int], only: Sequence[str] | None,
          frequency: str | None) -> tuple[list[Series], Calendar]:
    rows = np.arange(len(table.raw.cells))
    ordinals, calendar = _period_ordinals(table, period, {table.headers[period]: rows}, frequency)
    _duplicates(table, period, ordinals, rows, None)
    order = np.argsort(ordinals, kind="stable")
    rows, ordinals = rows[order], ordinals[order]
    taken = {period, *regressors.values()}
    columns = [i for i in range(len(table.headers)) if i not in taken]
    known = {i for i, h in enumerate(table.headers) if _known(h)}
    columns = [i for i in columns if i not in known]  # the workbook's regressors are never queues
    if only is not None:
        missing = [name for name in only if name not in table.by_text]
        if missing:
            raise table.fail(f"no series column(s) {', '.join(map(repr, missing))}; the header has: {table.listing()}")
        columns = [table.by_text[name] for name in only]
    if not columns:
        raise table.fail(f"no series columns: the header has only {table.listing()}")
    regressor_rows: dict[str, np.ndarray] = {}
    out = []
    for position in columns:
        sid = _series_id(table, table.headers[position], f"(header of column {_column_letter(position)})")
        present = ~_missing_mask(table.column(position)[rows])
        if not present.any():
            raise table.fail(f"column {sid!r} has no values")
        first, last = np.flatnonzero(present)[[0, -1]]
        span = rows[first:last + 1]
        _gaps(table, ordinals[first:last + 1], sid if len(columns) > 1 else None, calendar)
        y = _numbers(table, position, span, sid)
        x = None
        if regressors:
            for name, reg in regressors.items():
                if name not in regressor_rows:
                    regressor_rows[name] = np.full(len(rows), np.nan)
                known_rows = regressor_rows[name]
                need = np.arange(first, last + 1)
                todo = need[np.isnan(known_rows[need])]
                if len(todo):
                    known_rows[todo] = _numbers(table, reg, rows[todo], name)
            x = np.column_stack([regressor_rows[name][first:last + 1] for name in regressors])
        out.append(Series(sid, int(ordinals[first]), y, x))
    return out, calendar


def _long(table: _Table, period: int, ident: int, value: int, regressors: dict[str, int],
          only: Sequence[str] | None, frequency: str | None) -> tuple[list[Series], Calendar]:
    rows = np.arange(len(table.raw.cells))
    ids = table.column(ident)
    missing = _missing_mask(ids)
    if missing.any():
        raise table.fail(f"missing series id in column {table.headers[ident]!r} at row {table.row(int(np.flatnonzero(missing)[0]))}")
    groups: dict[str, list[int]] = {}
    for i, raw_id in enumerate(ids):
        sid = _series_id(table, raw_id, f"at row {table.row(i)}")
        groups.setdefault(sid, []).append(i)
    if only is not None:
        absent = [name for name in only if name not in groups]
        if absent:
            raise table.fail(f"no rows for series {', '.join(map(repr, absent))}")
        groups = {name: groups[name] for name in only}
    out = []
    arrays = {sid: np.asarray(members) for sid, members in groups.items()}
    ordinals, calendar = _period_ordinals(table, period, arrays, frequency)
    for sid, mine in arrays.items():
        _duplicates(table, period, ordinals[mine], mine, sid, arrays)
        mine = mine[np.argsort(ordinals[mine], kind="stable")]
        _gaps(table, ordinals[mine], sid, calendar)
        y = _numbers(table, value, mine, table.headers[value], sid)
        x = np.column_stack([_numbers(table, reg, mine, name, sid) for name, reg in regressors.items()]) \
            if regressors else None
        out.append(Series(sid, int(ordinals[mine[0]]), y, x))
    del rows
    return out, calendar


# -------------------------------------------------------------------------- API


def panel_from_table(raw: RawTable, *, layout: str | None = None, regressors: Sequence[str] | None = None,
                     series: Sequence[str] | None = None, period_column: str | None = None,
                     id_column: str | None = None, value_column: str | None = None,
                     min_months: int | None = None, frequency: str | None = None) -> Panel:
    """Validate a read table and return the panel (see the module docstring). Raises DataError.

    ``series`` keeps only the named series (wide: column headers; long: ids), in that order. Series
    shorter than ``min_months`` periods (default: two cycles of the frequency's shortest season,
    24 for months) are left out and listed in ``Panel.skipped``; none left is an error.
    ``frequency`` (``Engine.py --freq``) is checked against the timestamps; None tells it from them.
    """
    if layout not in (None, *LAYOUTS):
        raise DataError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if frequency not in (None, *FREQUENCIES):
        raise DataError(f"frequency must be one of {', '.join(FREQUENCIES)}, got {frequency!r}")
    table = _Table(raw)
    if raw.cells.empty:
        raise table.fail("the data has a header but no data rows")
    least = MIN_MONTHS if min_months is None else min_months
    if len(raw.cells) < least:  # no series can be long enough: say so before reading every cell
        raise table.fail(f"need at least {least} months of data, got {len(raw.cells)} row(s)")
    period = table.find(PERIOD_HEADERS, period_column, "period", "--period-column")
    if period is None:
        raise table.fail(f"no period column: expected a header named one of {', '.join(PERIOD_HEADERS)} "
                         f"(found: {table.listing()}); name it with --period-column")
    ident = table.find(ID_HEADERS, id_column, "series-id", "--id-column") if layout != "wide" or id_column else None
    value = table.find(VALUE_HEADERS, value_column, "value", "--value-column") if layout != "wide" or value_column \
        else None
    if layout is None:
        layout = "long" if ident is not None and value is not None else "wide"
    if layout == "long" and (ident is None or value is None):
        lacking = " and ".join(w for w, p in (("a series-id column (" + ", ".join(ID_HEADERS) + ")", ident),
                                              ("a value column (" + ", ".join(VALUE_HEADERS) + ")", value)) if p is None)
        raise table.fail(f"the long layout needs {lacking}; found: {table.listing()}")
    taken = {period} | ({ident, value} if layout == "long" else set())
    regressor_columns = _regressor_columns(table, regressors, taken)
    if layout == "long":
        found, calendar = _long(table, period, ident, value, regressor_columns, series, frequency)
    else:
        found, calendar = _wide(table, period, regressor_columns, series, frequency)
    least = calendar.min_length if min_months is None else min_months
    unit = calendar.unit
    kept = tuple(s for s in found if len(s) >= least)
    skipped = {s.id: f"{len(s)} {unit}s; need at least {least} (two full seasons)"
               for s in found if len(s) < least}
    if not kept:
        longest = max(found, key=len)
        which = f" (the longest series, {longest.id!r})" if len(found) > 1 else ""
        raise table.fail(f"need at least {least} {unit}s of data, got {len(longest)}{which}")
    return Panel(kept, tuple(regressor_columns), raw.source, layout, calendar=calendar, skipped=skipped)


def load_panel(path: str | Path, *, sheet: str | int | None = None, **options) -> Panel:
    """Read ``path`` (.xlsx/.xlsm/.csv/.parquet) and validate it (see :func:`panel_from_table`)."""
    return panel_from_table(read_table(path, sheet=sheet), **options)


def load_workbook(path: str | Path, **options) -> pd.DataFrame:
    """A wide-layout file as one frame: series columns then regressor columns on month starts.

    For people and notebooks (the pipeline works on the panel). Series that start late or stop early
    are NaN outside their span; the regressors come from the file's rows, so they must be shared by
    all series (the wide layout).
    """
    panel = load_panel(path, **options)
    frame = panel.wide_frame()
    if panel.regressors:
        regressors = pd.DataFrame(np.nan, index=frame.index, columns=list(panel.regressors))
        for s in panel:
            regressors.iloc[s.start - panel.start:s.end - panel.start + 1] = s.x
        frame = frame.join(regressors)
    if panel.calendar.monthly:
        frame.index = pd.DatetimeIndex(frame.index, freq="MS", name="month")
    return frame
