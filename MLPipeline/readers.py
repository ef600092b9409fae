"""Read a data file into a :class:`RawTable`: headers, cells as found, and spreadsheet row numbers.

Nothing here knows about queues or months; :mod:`MLPipeline.data` gives the cells their meaning.
Every read is bounded, so a hostile or broken file costs seconds and a clear :class:`DataError`,
never minutes or gigabytes:

* ``MAX_INPUT_BYTES`` — the file's size, and for .xlsx the *uncompressed* size of the workbook's parts
  (a small zip can expand a thousandfold; the sizes are read from the zip directory before anything is
  decompressed);
* ``MAX_INPUT_CELLS`` — non-empty cells;
* ``MAX_READ_SECONDS`` — wall time spent reading a sheet.

CSV files: UTF-8 with or without a byte-order mark; the delimiter is sniffed among ``, ; tab |``, and a
``;``-separated file is taken to use decimal commas (how Excel writes CSV where the comma is the decimal
mark). Other encodings are refused with the fix (save as "CSV UTF-8").
"""

from __future__ import annotations

import csv
import io
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from MLPipeline.config import MAX_INPUT_BYTES, MAX_INPUT_CELLS, MAX_READ_SECONDS

SUPPORTED_SUFFIXES = (".xlsx", ".xlsm", ".csv", ".parquet")
_SNIFF_BYTES = 64 * 1024


class DataError(ValueError):
    """The input data cannot be used; the message says what to fix."""


@dataclass
class RawTable:
    """A table as read: ``headers`` (the first non-blank row), ``cells`` (object DataFrame, one column
    per header position) and ``rows`` (the spreadsheet/line number of each data row; the header is
    row ``header_row``). ``decimal_comma``: numbers in text use ``,`` as the decimal mark."""

    source: str
    headers: list
    cells: pd.DataFrame
    rows: np.ndarray
    header_row: int = 1
    decimal_comma: bool = False
    sheet: str | None = None


def _limit(what: str, found: str, limit: str, fix: str) -> DataError:
    return DataError(f"{what} {found}, over the limit of {limit}; {fix}")


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"data file is empty: {path}")
    if size > MAX_INPUT_BYTES:
        raise _limit(f"{path.name} is", _mib(size), _mib(MAX_INPUT_BYTES),
                     "split the data, or raise CALLCENTER_MAX_INPUT_BYTES")


def read_table(path: str | Path, *, sheet: str | int | None = None) -> RawTable:
    """Read ``path`` (.xlsx/.xlsm: ``sheet`` by name or 1-based number, default the first; .csv;
    .parquet). Raises DataError."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if path.is_dir():
        raise DataError(f"data path is a directory, not a file: {path}")
    if not path.is_file():
        raise DataError(f"data path is not a regular file: {path}")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"unsupported file type {suffix or '(none)'!r} for {path.name}; use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    _check_size(path)
    if sheet is not None and suffix not in (".xlsx", ".xlsm"):
        raise DataError(f"--sheet applies to Excel workbooks only, not {path.name}")
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    return _read_xlsx(path, sheet)


# --------------------------------------------------------------------------- CSV


def _decode(path: Path) -> str:
    payload = path.read_bytes()
    nul = payload.find(b"\x00")
    if nul >= 0:  # UTF-16 (Excel's "Unicode text") or a binary file; the CSV parser would cut values there
        raise DataError(f"{path.name} contains a NUL byte at offset {nul}: it is not UTF-8 text (UTF-16 or "
                        "binary?); save it as 'CSV UTF-8' (Excel: Save As > CSV UTF-8)")
    try:
        return payload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path.name} is not UTF-8 text (byte 0x{payload[exc.start]:02x} at offset {exc.start}); "
            "save it as 'CSV UTF-8' (Excel: Save As > CSV UTF-8) or convert it to UTF-8"
        ) from None


def _delimiter(text: str) -> str:
    sample = text[:_SNIFF_BYTES]
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        first = sample.splitlines()[0] if sample.splitlines() else ""
        counts = {d: first.count(d) for d in ",;\t|"}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


def _read_csv(path: Path) -> RawTable:
    text = _decode(path)
    if not text.strip():
        raise DataError(f"data file has no rows: {path}")
    delimiter = _delimiter(text)
    try:
        grid = pd.read_csv(io.StringIO(text), sep=delimiter, header=None, dtype=object, skip_blank_lines=False,
                           keep_default_na=False, na_values=[""], engine="c")
    except pd.errors.EmptyDataError:
        raise DataError(f"data file has no rows: {path}") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"could not read {path.name} as CSV (delimiter {delimiter!r}): {exc}") from None
    _check_cells(int(grid.notna().to_numpy().sum()), path.name)
    # Line numbers: pandas keeps blank lines as all-NaN rows (skip_blank_lines=False), so position + 1.
    return _from_grid(grid, np.arange(1, len(grid) + 1), str(path.name), decimal_comma=delimiter == ";")


def _check_cells(count: int, name: str) -> None:
    if count > MAX_INPUT_CELLS:
        raise _limit(f"{name} holds", f"{count:,} non-empty cells", f"{MAX_INPUT_CELLS:,}",
                     "split the data, or raise CALLCENTER_MAX_INPUT_CELLS")


def _from_grid(grid: pd.DataFrame, numbers: np.ndarray, source: str, *, decimal_comma: bool = False,
               sheet: str | None = None) -> RawTable:
    """The first non-blank row is the header; blank rows are dropped, row numbers kept."""
    filled = grid.notna().to_numpy().any(axis=1)
    if not filled.any():
        raise DataError(_empty_message(source, sheet))
    first = int(np.flatnonzero(filled)[0])
    header = grid.iloc[first].tolist()
    # trailing header cells that are empty are not columns (a stray formatted cell)
    width = max((i + 1 for i, h in enumerate(header) if not _blank(h)), default=0)
    body = grid.iloc[first + 1:, :width]
    keep = body.notna().to_numpy().any(axis=1) if width else np.zeros(len(body), dtype=bool)
    cells = body[keep].reset_index(drop=True)
    cells.columns = range(width)
    return RawTable(source, header[:width], cells, numbers[first + 1:][keep], header_row=int(numbers[first]),
                    decimal_comma=decimal_comma, sheet=sheet)


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and not value.strip())


def _empty_message(source: str, sheet: str | None, others: list[str] | None = None) -> str:
    if sheet is None:
        return f"{source} has no header and no data rows (it is empty)"
    where = f"sheet {sheet!r} of {source}"
    if others:
        return (f"{where} is empty (only one sheet is read: the first, unless --sheet names another); "
                f"other sheets: {', '.join(map(repr, others))}")
    return f"{where} has no header and no data rows (it is empty)"


# ------------------------------------------------------------------------ Parquet


def _read_parquet(path: Path) -> RawTable:
    try:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path).metadata
        _check_cells(meta.num_rows * meta.num_columns, path.name)
        frame = pd.read_parquet(path)
    except DataError:
        raise
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise DataError(f"could not read {path.name} as Parquet: {exc}") from None
    if frame.empty:
        raise DataError(f"{path.name} has a header but no data rows")
    cells = frame.astype(object).where(frame.notna(), None).reset_index(drop=True)
    headers = list(cells.columns)
    cells.columns = range(len(headers))
    # Parquet has no spreadsheet rows: number data rows from 2 as if the column names were row 1.
    return RawTable(path.name, headers, cells, np.arange(2, len(cells) + 2))


# -------------------------------------------------------------------------- Excel


def _check_zip(path: Path) -> None:
    """Refuse a workbook whose parts expand past MAX_INPUT_BYTES, before decompressing anything."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"could not read {path.name} as XLSX: {exc}") from None
    total = sum(info.file_size for info in infos)
    if total > MAX_INPUT_BYTES:
        biggest = max(infos, key=lambda info: info.file_size)
        raise _limit(f"{path.name} expands to", f"{_mib(total)} ({biggest.filename}: {_mib(biggest.file_size)})",
                     _mib(MAX_INPUT_BYTES), "save the data as CSV or Parquet, split it, or raise "
                     "CALLCENTER_MAX_INPUT_BYTES")


def _pick_sheet(workbook, sheet: str | int | None, name: str):
    names = workbook.sheetnames
    if sheet is None:
        return workbook[names[0]]
    if isinstance(sheet, int) or (isinstance(sheet, str) and sheet.isdigit() and sheet not in names):
        number = int(sheet)
        if not 1 <= number <= len(names):
            raise DataError(f"{name} has {len(names)} sheet(s); there is no sheet number {number}")
        return workbook[names[number - 1]]
    if sheet not in names:
        raise DataError(f"{name} has no sheet {sheet!r}; its sheets: {', '.join(map(repr, names))}")
    return workbook[sheet]


def _sheet_rows(workbook, worksheet):
    """(sheet row number, {column: value}) for the rows present in the sheet's XML, sparse.

    openpyxl's public iterators pad every row to the declared dimension and yield every missing row in
    between, so one stray cell at XFD1048576 means a million padded rows; its parser, which those
    iterators wrap, yields only what is there (the same calls as ReadOnlyWorksheet._cells_by_row;
    openpyxl is pinned).
    """
    from openpyxl.worksheet._reader import WorkSheetParser

    with worksheet._get_source() as source:
        parser = WorkSheetParser(source, worksheet._shared_strings, data_only=True, epoch=workbook.epoch,
                                 date_formats=workbook._date_formats, timedelta_formats=workbook._timedelta_formats)
        for number, cells in parser.parse():
            yield number, {cell["column"]: cell["value"] for cell in cells if not _blank(cell["value"])}


def _read_xlsx(path: Path, sheet: str | int | None) -> RawTable:
    from openpyxl import load_workbook

    _check_zip(path)
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl/zipfile raise many types for a damaged file
        raise DataError(f"could not read {path.name} as XLSX: {exc}") from None
    try:
        worksheet = _pick_sheet(workbook, sheet, path.name)
        title = worksheet.title
        rows, numbers, cells, width = [], [], 0, None
        deadline = time.monotonic() + MAX_READ_SECONDS
        for count, (number, values) in enumerate(_sheet_rows(workbook, worksheet)):
            if count % 1024 == 0 and time.monotonic() > deadline:
                raise _limit(f"reading sheet {title!r} of {path.name} took", f"over {MAX_READ_SECONDS:.0f} s",
                             f"{MAX_READ_SECONDS:.0f} s", "save the data as CSV or Parquet")
            if width is None:
                if not values:
                    continue  # blank rows above the header
                width = max(values)
            kept = [values.get(column) for column in range(1, width + 1)]
            if any(v is not None for v in kept):  # cells right of the header's last column are not data
                rows.append(kept)
                numbers.append(number)
                cells += sum(v is not None for v in kept)
                if cells > MAX_INPUT_CELLS:
                    _check_cells(cells, f"sheet {title!r} of {path.name}")
        if width is None:
            others = [n for n in workbook.sheetnames if n != title]
            raise DataError(_empty_message(path.name, title, others if sheet is None else None))
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"could not read {path.name} as XLSX: {exc}") from None
    finally:
        workbook.close()
    return _from_grid(pd.DataFrame(rows, dtype=object), np.asarray(numbers), path.name, sheet=title)
