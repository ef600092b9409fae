"""Answers as files: a route's rows as CSV or .xlsx, in its own columns or in statsforecast's.

A route that offers downloads (``download=`` in :func:`service.api.add_endpoint`) computes its JSON
answer as always; :func:`respond` then picks the format — ``?format=`` first, else the Accept header,
else JSON — and writes the answer's rows as a table. The rows are the JSON answer's, so a download is
bounded exactly as the answer is (a forecast's horizon, a page of the prediction log with its
``limit`` and cursor; the next page's address goes in a ``Link`` header).

Columns: the rows' keys in order, nested objects flattened with a dot (``regressors.phone_lines``,
as ``pandas.json_normalize`` names them). ``output=nixtla`` gives statsforecast's forecast columns
instead: ``unique_id, ds, mean``, then ``lo-<L>`` for each level and ``hi-<L>`` for each level, levels
ascending — the names a statsforecast model's ``forecast(level=...)`` returns — with ``ds`` the
period's first day (monthly data is ``freq="MS"`` there).

CSV cells are exact: floats as Python writes them (they read back to the same number), booleans
as ``true``/``false``, nulls empty. In the .xlsx numbers carry 16 significant digits (openpyxl's
writer; Excel shows 15), and every text cell is text, never a formula, so an id that starts with
``=`` stays an id; a second sheet, ``about``, holds the answer's other fields
(model version, assumption, ...). The text in these tables is the operator's training data (series
and regressor names) or the service's own, never a client's free text.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Response, request
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from service.errors import ApiError
from service.schemas import FORMATS, DownloadQuery

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv", "xlsx": XLSX}
#: What a table row becomes in the nixtla shape: the series and the period, renamed.
NIXTLA_KEYS = ("unique_id", "ds", "mean")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Download:
    """How a route's answer is a table: ``rows`` is the key of its list of rows; ``columns`` are the
    columns written when a page has no rows (a page with rows names its own)."""

    rows: str
    columns: tuple[str, ...] = ()


def respond(answer: dict[str, Any], download: Download, query: DownloadQuery, chosen: str) -> dict[str, Any] | Response:
    """The answer in the format :func:`choose_format` chose: the dict itself for JSON, else a file."""
    if chosen == "json":
        return answer
    rows = [flatten(row) for row in answer[download.rows]]
    columns = column_names(rows, download.columns)
    if query.output == "nixtla":
        columns, rows = nixtla(columns, rows)
    about = {key: value for key, value in answer.items() if key != download.rows}
    body = csv_text(columns, rows) if chosen == "csv" else xlsx_bytes(columns, rows, about)
    response = Response(body, mimetype=MEDIA_TYPES[chosen])
    response.headers["Content-Disposition"] = f'attachment; filename="{download.rows}.{chosen}"'
    if answer.get("next_cursor"):
        args = {**request.args.to_dict(), "cursor": answer["next_cursor"]}
        response.headers["Link"] = f'<{request.path}?{urlencode(args)}>; rel="next"'
    return response


def choose_format(query: DownloadQuery) -> str:
    """``format`` when given, else the best of the Accept header (JSON first on a tie); the nixtla
    shape is a table, so it is CSV or .xlsx only."""
    table_only = query.output == "nixtla"
    if query.format is not None:
        if table_only and query.format == "json":
            raise ApiError(422, "invalid_output", "output=nixtla is a table: ask for format=csv or format=xlsx",
                           "output")
        return query.format
    offered = [name for name in FORMATS if not (table_only and name == "json")]
    if not request.accept_mimetypes:  # no Accept header: the default
        return offered[0]
    best = request.accept_mimetypes.best_match([MEDIA_TYPES[name] for name in offered])
    if best is None:
        raise ApiError(406, "not_acceptable", "the Accept header names none of "
                       f"{', '.join(MEDIA_TYPES[name] for name in offered)}; or use ?format={'|'.join(offered)}")
    return next(name for name in offered if MEDIA_TYPES[name] == best)


def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """One level of keys: a nested object's keys joined to its own with a dot."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def column_names(rows: list[dict[str, Any]], empty: Iterable[str]) -> list[str]:
    """Every key of the rows, in the order first seen."""
    if not rows:
        return list(empty)
    return list(dict.fromkeys(key for row in rows for key in row))


def nixtla(columns: list[str], rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """statsforecast's forecast columns for the rows' interval levels (``lower_<L>``/``upper_<L>``)."""
    labels = sorted((c.removeprefix("lower_") for c in columns if c.startswith("lower_")), key=float)
    bounds = [(f"lo-{label}", f"lower_{label}") for label in labels]
    bounds += [(f"hi-{label}", f"upper_{label}") for label in labels]
    shaped = [
        {"unique_id": row["domain"], "ds": period_start(row["month"] if "month" in row else row["period"]),
         "mean": row["mean"],
         **{name: row.get(source) for name, source in bounds}}
        for row in rows
    ]
    return [*NIXTLA_KEYS, *(name for name, _ in bounds)], shaped


def period_start(period: str) -> dt.date | dt.datetime | str:
    """A period as the timestamp statsforecast expects: a month is its first day; an ISO timestamp is
    read as one, in UTC without a zone (statsforecast's frames are naive, and a spreadsheet cell
    cannot hold a zone); anything else stays text."""
    month = _MONTH.match(period)
    if month:
        return dt.date(int(month[1]), int(month[2]), 1)
    try:
        moment = dt.datetime.fromisoformat(period)
    except ValueError:
        return period
    return moment if moment.tzinfo is None else moment.astimezone(dt.UTC).replace(tzinfo=None)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)  # a float's str is its shortest exact form


def csv_text(columns: list[str], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow(columns)
    writer.writerows([_csv_cell(row.get(c)) for c in columns] for row in rows)
    return out.getvalue()


def _xlsx_row(sheet, values: Iterable[Any]) -> list[WriteOnlyCell]:
    cells = []
    for value in values:
        cell = WriteOnlyCell(sheet, value=value)
        if isinstance(value, str):
            cell.data_type = "s"  # openpyxl would store "=..." as a formula
        cells.append(cell)
    return cells


def xlsx_bytes(columns: list[str], rows: list[dict[str, Any]], about: dict[str, Any]) -> bytes:
    book = Workbook(write_only=True)
    table = book.create_sheet("data")
    table.append(_xlsx_row(table, columns))
    for row in rows:
        table.append(_xlsx_row(table, (row.get(c) for c in columns)))
    notes = book.create_sheet("about")
    notes.append(_xlsx_row(notes, ("field", "value")))
    for key, value in flatten(about).items():
        notes.append(_xlsx_row(notes, (key, value)))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def document(spec: dict[str, Any]) -> dict[str, Any]:
    """Add the file formats to the 200 answer of every operation that takes ``format`` (spectree
    documents JSON only). Idempotent: the document is built once and served many times."""
    tables = {"text/csv": {"schema": {"type": "string"}},
              XLSX: {"schema": {"type": "string", "contentMediaType": XLSX}}}
    for operations in spec["paths"].values():
        for operation in operations.values():
            if any(p.get("name") == "format" and p.get("in") == "query" for p in operation.get("parameters", [])):
                operation["responses"]["200"]["content"].update(tables)
                operation["responses"].setdefault("406", {
                    "description": "Not Acceptable",
                    "content": {"application/json": operation["responses"]["422"]["content"]["application/json"]},
                })
    return spec
