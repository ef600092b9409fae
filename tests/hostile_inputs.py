"""A corpus of hostile and awkward data files, generated (never committed): what each must give.

Each :class:`Case` writes one file into a directory and says what loading it must do: load (with the
series it must have) or fail with a :class:`~MLPipeline.data.DataError` whose one-line message holds
``fragment``. ``tests/test_hostile_inputs.py`` runs every case through the loader and a sample through
``Engine.py``. Run ``python tests/hostile_inputs.py DIR`` to write the corpus for a manual look.
"""

from __future__ import annotations

import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from openpyxl import Workbook

from MLPipeline.sample_data import generate, to_workbook_frame, write_data


@dataclass(frozen=True)
class Case:
    name: str
    write: Callable[[Path], Path]
    fragment: str | None = None  # the DataError must contain it; None: the file loads
    series: tuple[str, ...] | None = None  # the ids a loading case must give
    options: tuple = ()  # load_panel options as (key, value) pairs


def _book(n: int = 30) -> pd.DataFrame:
    return to_workbook_frame(generate(n_months=n))


def _xlsx(rows: list[list], path: Path, *, sheets: dict[str, list[list]] | None = None, extra=None) -> Path:
    workbook = Workbook()
    first = workbook.active
    first.title = "Sheet1"
    for row in rows:
        first.append(row)
    for title, content in (sheets or {}).items():
        sheet = workbook.create_sheet(title)
        for row in content:
            sheet.append(row)
    if extra is not None:
        extra(first)
    workbook.save(path)
    return path


def _rows(frame: pd.DataFrame) -> list[list]:
    out = [list(frame.columns)]
    for record in frame.itertuples(index=False):
        out.append([v.to_pydatetime() if hasattr(v, "to_pydatetime") else (None if pd.isna(v) else v) for v in record])
    return out


def _months(row: Callable[[int, int], str], header: str = "month,A", n: int = 30) -> str:
    """A CSV of ``n`` monthly rows from 2010-01, each written by ``row(year, month)``."""
    return header + "\n" + "".join(row(2010 + i // 12, i % 12 + 1) + "\n" for i in range(n))


def _csv(text: str | bytes, path: Path) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _with_column(values) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        frame = _book()
        frame["Banking"] = frame["Banking"].astype(object)
        frame.loc[5, "Banking"] = values
        return _xlsx(_rows(frame), path)
    return write


def _constant(value: float) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        frame = _book().astype({"Banking": float})
        frame["Banking"] = value
        return _xlsx(_rows(frame), path)
    return write


def _bomb(path: Path, size: int = 6 * 2**20) -> Path:
    """A valid workbook whose sheet XML expands to ``size`` bytes of rows (compresses ~1000:1)."""
    _xlsx(_rows(_book()), path)
    with zipfile.ZipFile(path) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    row = b'<row r="%d"><c r="A%d" t="inlineStr"><is><t>x</t></is></c></row>'
    body, n, total = [], 2, 0
    while total < size:
        body.append(row % (n, n))
        total += len(body[-1])
        n += 1
    sheet = parts["xl/worksheets/sheet1.xml"]
    head, tail = sheet.split(b"</sheetData>")
    parts["xl/worksheets/sheet1.xml"] = head + b"".join(body) + b"</sheetData>" + tail
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name, payload in parts.items():
            target.writestr(name, payload)
    return path


def _stray(path: Path) -> Path:
    return _xlsx(_rows(_book()), path, extra=lambda sheet: sheet.__setitem__("XFD1048576", "stray"))


def _second_sheet(path: Path) -> Path:
    return _xlsx([], path, sheets={"Data": _rows(_book())})


def _long_months(path: Path) -> Path:
    frame = generate(n_months=400, queues=1)
    return write_data(frame, path, "long")


CASES: tuple[Case, ...] = (
    Case("empty.csv", lambda p: _csv(b"", p), "data file is empty"),
    Case("blank-lines.csv", lambda p: _csv("\n\n\n", p), "data file has no rows"),
    Case("header-only.xlsx", lambda p: _xlsx([list(_book().columns)], p), "header but no data rows"),
    Case("not-a-zip.xlsx", lambda p: _csv(b"PK\x03\x04 broken", p), "could not read not-a-zip.xlsx as XLSX"),
    Case("html-as-xlsx.xlsx", lambda p: _csv(b"<html><body>login</body></html>", p), "could not read"),
    Case("ole-encrypted.xlsx", lambda p: _csv(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512, p), "could not read"),
    Case("zip-bomb.xlsx", _bomb, "expands to"),
    Case("stray-cell.xlsx", _stray, None, ("Healthcare", "Telecom", "Banking", "Technology", "Insurance")),
    Case("data-on-sheet-2.xlsx", _second_sheet, "only one sheet is read"),
    Case("data-on-sheet-2-chosen.xlsx", _second_sheet, None, ("Healthcare", "Telecom", "Banking", "Technology",
                                                                "Insurance"), (("sheet", "Data"),)),
    Case("constant.xlsx", _constant(250.0), None, ("Healthcare", "Telecom", "Banking", "Technology", "Insurance")),
    Case("all-zero.xlsx", _constant(0.0), None, ("Healthcare", "Telecom", "Banking", "Technology", "Insurance")),
    Case("huge-value.xlsx", _with_column(1e300), "larger than 1e+12"),
    Case("infinity.xlsx", _with_column("inf"), "non-finite value 'inf'"),
    Case("nan-text.xlsx", _with_column("NaN"), "non-finite value 'NaN'"),
    Case("boolean.xlsx", _with_column(True), "non-numeric value True"),
    Case("negative.xlsx", _with_column(-1), "negative value -1"),
    Case("date-in-numbers.xlsx", _with_column(pd.Timestamp("2020-01-01").to_pydatetime()), "non-numeric value"),
    # openpyxl writes a formula without a cached value: read as Excel would show it unsaved, empty
    Case("formula-without-value.xlsx", _with_column("=A1+1"), "missing value in column 'Banking' at row 7"),
    Case("nul-bytes.csv", lambda p: _csv(_months(lambda y, m: f"{y}-{m:02d},{m}").replace(",5\n", ",5\x00\n", 1), p),
         "contains a NUL byte at offset"),
    Case("latin-1.csv", lambda p: _csv("month,Zürich\n2020-01,1\n".encode("latin-1"), p), "not UTF-8"),
    Case("duplicate-header.csv", lambda p: _csv("month,A,A\n2020-01,1,2\n", p), "appears more than once"),
    Case("blank-header.csv", lambda p: _csv("month,,B\n2020-01,1,2\n", p), "has no header"),
    Case("long-id.csv", lambda p: _csv(_months(lambda y, m: f"{'q' * 300},{y}-{m:02d},1", "unique_id,ds,y"), p),
         "at most 200"),
    Case("control-char-id.csv", lambda p: _csv(_months(lambda y, m: f"a\x07b,{y}-{m:02d},1", "unique_id,ds,y"), p),
         "control character"),
    Case("mixed-dates.csv", lambda p: _csv(_months(lambda y, m: f"{y}-{m:02d},1").replace("2010-05", "40300"), p),
         "number among dates"),
    Case("us-dates.csv", lambda p: _csv("month,A\n" + "".join(f"{m:02d}/28/2020,{m}\n" for m in range(1, 13))
                                        + "".join(f"{m:02d}/28/2021,{m}\n" for m in range(1, 13)), p), None, ("A",)),
    Case("year-9999.csv", lambda p: _csv(_months(lambda y, m: f"{y}-{m:02d},1").replace("2010-05", "9999-05"), p),
         "outside the supported years"),
    Case("one-month.csv", lambda p: _csv("month,A\n2020-01,1\n", p), "need at least 24 months"),
    Case("400-months.csv", _long_months, None, ("queue 1",)),
    Case("wide-16k-columns.csv", lambda p: _csv("month," + ",".join(f"q{i}" for i in range(16_000)) + "\n"
                                               + "2020-01," + ",".join("1" for _ in range(16_000)) + "\n", p),
         "need at least 24 months"),
)


def write_corpus(directory: Path) -> list[tuple[Case, Path]]:
    directory.mkdir(parents=True, exist_ok=True)
    return [(case, case.write(directory / case.name)) for case in CASES]


if __name__ == "__main__":
    for case, path in write_corpus(Path(sys.argv[1] if len(sys.argv) > 1 else "hostile")):
        print(f"{path}  ->  {case.fragment or 'loads: ' + ', '.join(case.series or ())}")
    np.seterr(all="ignore")
