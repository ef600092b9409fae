"""Actuals recorded in the prediction log (``POST /actuals``), merged into a training panel.

Periods are the data's: the log's actuals of the panel's frequency are read, on its calendar (a month,
an hour, ...); "month" below stands for whatever period that is.

The log is the service's database: ``DATABASE_URL`` when set, else the SQLite file the service
uses by default (``$PREDICTION_DB_DIR`` or ``var/`` beside the model directory). Only its
``actuals`` table is read, never written.

Merging (:func:`merge_actuals`) keeps the data file authoritative: a month the data already has
keeps the data's value, and a logged value that differs is listed as a disagreement; months after
a series' last month are appended while they follow on without a gap (a series has no holes); the
regressors of an appended month repeat the series' last row, since ``POST /actuals`` records
volumes only. A logged value that no series could be trained on (negative, not finite, above
``MAX_VOLUME``) refuses the whole merge with one line naming the row: a typo in the log must not
silently become training data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from MLPipeline.calendars import Calendar
from MLPipeline.config import MAX_VOLUME
from MLPipeline.data import DataError
from MLPipeline.frequency import format_period
from MLPipeline.panel import Panel, Series

#: Relative difference under which a logged value equals the data's (float round trips through a database).
SAME_VALUE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Actual:
    domain: str
    month: int  # period ordinal on the data's calendar
    value: float


@dataclass
class MergeReport:
    """What the merge did: appended months per series, disagreements, rows not used and why."""

    source: str
    rows: int = 0
    appended: dict[str, list[str]] = field(default_factory=dict)  # series -> months appended
    disagreements: list[dict] = field(default_factory=list)  # series, month, data, log
    unused: list[dict] = field(default_factory=list)  # series, month, why

    def as_dict(self) -> dict:
        return {"source": self.source, "rows": self.rows, "appended": self.appended,
                "disagreements": self.disagreements, "unused": self.unused}


def public_url(url: str) -> str:
    """``url`` with its password masked, for messages and the report."""
    import sqlalchemy as sa

    return sa.engine.make_url(url).render_as_string(hide_password=True)


def prediction_log_url(output_dir: str | Path) -> str:
    """The service's prediction log for models in ``output_dir``: DATABASE_URL, else its SQLite file."""
    from service.store.connection import database_url

    return database_url(None, None, output_dir)


def read_actuals(url: str, calendar: Calendar | None = None) -> list[Actual]:
    """Every row of the log's actuals table at ``url`` of ``calendar``'s frequency (monthly by default),
    on that calendar. Raises DataError when the log cannot be read or a row is unusable."""
    import sqlalchemy as sa

    from service.store.connection import create_engine
    from service.store.tables import actuals

    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).is_file():
        raise DataError(f"--actuals: no prediction log at {parsed.database} (set DATABASE_URL or "
                        "PREDICTION_DB_DIR to the service's)")
    calendar = calendar or Calendar()
    engine = create_engine(url)
    query = sa.select(actuals.c.domain, actuals.c.period, actuals.c.value).where(
        actuals.c.frequency == calendar.frequency)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    except sa.exc.SQLAlchemyError as exc:
        raise DataError(f"--actuals: cannot read the actuals table of {public_url(url)}: "
                        f"{type(exc.orig or exc).__name__}") from None
    finally:
        engine.dispose()
    found = []
    for domain, period, value in rows:
        where = f"prediction log actuals row (domain {domain!r}, {calendar.field} {format_period(calendar.frequency, period)})"
        if value is None or not math.isfinite(value):
            raise DataError(f"{where}: value {value} is not a finite number; correct it with POST /actuals")
        if value < 0:
            raise DataError(f"{where}: value {value:g} is negative; correct it with POST /actuals")
        if value > MAX_VOLUME:
            raise DataError(f"{where}: value {value:g} is above {MAX_VOLUME:g}; correct it with POST /actuals")
        try:
            ordinal = int(calendar.ordinals([period])[0])
        except ValueError as exc:  # another phase: e.g. days logged at 00:00 UTC, data at 23:00 UTC
            raise DataError(f"{where}: not a period of the data ({exc}); correct it with POST /actuals") from None
        found.append(Actual(str(domain), ordinal, float(value)))
    return found


def merge_actuals(panel: Panel, logged: list[Actual], source: str = "") -> tuple[Panel, MergeReport]:
    """``panel`` with the logged months appended (see the module docstring), and what was done."""
    report = MergeReport(source, rows=len(logged))
    format_ordinal = panel.calendar.label
    by_series: dict[str, dict[int, float]] = {}
    for row in logged:
        if row.domain not in panel:
            report.unused.append({"series": row.domain, "month": format_ordinal(row.month),
                                  "why": "not a series of the data"})
            continue
        by_series.setdefault(row.domain, {})[row.month] = row.value
    merged = []
    for s in panel:
        values = by_series.get(s.id, {})
        for month in sorted(m for m in values if m <= s.end):
            if month < s.start:
                report.unused.append({"series": s.id, "month": format_ordinal(month),
                                      "why": "before the series' first month in the data"})
                continue
            data_value = float(s.y[month - s.start])
            if not math.isclose(data_value, values[month], rel_tol=SAME_VALUE_TOLERANCE, abs_tol=1e-12):
                report.disagreements.append({"series": s.id, "month": format_ordinal(month),
                                             "data": data_value, "log": values[month]})
        new = []
        month = s.end + 1
        while month in values:
            new.append(values[month])
            month += 1
        for later in sorted(m for m in values if m >= month):
            report.unused.append({"series": s.id, "month": format_ordinal(later),
                                  "why": f"gap: no value for {format_ordinal(month)}"})
        if new:
            report.appended[s.id] = [format_ordinal(m) for m in range(s.end + 1, s.end + 1 + len(new))]
            x = None if s.x is None else np.vstack([s.x, np.repeat(s.x[-1:], len(new), axis=0)])
            s = Series(s.id, s.start, np.concatenate([s.y, np.asarray(new, dtype=float)]), x)
        merged.append(s)
    return Panel(tuple(merged), panel.regressors, panel.source, panel.layout, panel.calendar,
                 dict(panel.skipped)), report


def report_section(report: MergeReport, regressors: tuple[str, ...]) -> str:
    """The report's Markdown section on the merge."""
    lines = ["", "## Actuals from the prediction log", "",
             f"Read {report.rows} row(s) from {report.source}; where the data and the log both have a month, "
             "the data's value is used.", ""]
    if report.appended:
        lines += ["| series | months appended |", "|---|---|"]
        lines += [f"| {sid} | {months[0]}..{months[-1]} ({len(months)}) |" for sid, months in report.appended.items()]
        if regressors:
            lines += ["", f"Appended months repeat each series' last {', '.join(regressors)} values "
                          "(the log records volumes only)."]
    else:
        lines.append("No month was appended: the log has no month after the data's last.")
    if report.disagreements:
        lines += ["", f"**{len(report.disagreements)} disagreement(s)** (the data's value was used):", "",
                  "| series | month | data | log |", "|---|---|---|---|"]
        lines += [f"| {d['series']} | {d['month']} | {d['data']:g} | {d['log']:g} |" for d in report.disagreements]
    if report.unused:
        lines += ["", "Rows not used:", "", "| series | month | why |", "|---|---|---|"]
        lines += [f"| {u['series']} | {u['month']} | {u['why']} |" for u in report.unused]
    return "\n".join(lines) + "\n"
