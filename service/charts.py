"""Server-side SVG charts for the dashboard, drawn with matplotlib's object API (no pyplot).

One chart per domain: the history, the held-out months with the forecast of the model trained
without them (``bundle.holdout``), the served model's forecast path with its 80% and 95% bands
(drawn by :func:`MLPipeline.eda.forecast_figure`, extended here), and the actuals recorded
through ``POST /actuals``, anomalies marked.

The SVG is inlined in the page, so it is rewritten to suit a strict Content-Security-Policy:
matplotlib's ``style="..."`` attributes become SVG presentation attributes (``style-src 'self'``
blocks inline styles), its ``<style>`` element and metadata are dropped, and every id gets a
per-chart prefix so several charts can share one HTML document.

Rendering costs a few hundred milliseconds, so :class:`ChartCache` keeps one chart per (model
version, domain) and drops everything when the served version changes (a reload).

The same inputs (:class:`ChartInputs`) also go to the browser as JSON (:func:`chart_data`), where
``static/charts.js`` draws them with uPlot: values on hover, zoom. The SVG stays as what a reader
without JavaScript sees.
"""

from __future__ import annotations

import io
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import StrMethodFormatter

from MLPipeline.calendars import MONTHLY, Calendar
from MLPipeline.eda import forecast_figure
from MLPipeline.frequency import ISO_FORMAT

#: Size of a dashboard chart in inches: narrower than Engine's figures, so the text stays
#: legible when the SVG is scaled down to a phone-width screen.
CHART_SIZE = (5.6, 4.6)
#: rcParams while drawing and rendering: text as <text> (searchable, accessible, small), stable ids.
_SVG_RC = {"svg.fonttype": "none", "svg.hashsalt": "callcenter-gp", "font.size": 11.5}
#: rc_context changes matplotlib's global rcParams, so renders are serialised.
_RENDER_LOCK = threading.Lock()

_SVG_NS = "http://www.w3.org/2000/svg"
_XLINK_NS = "http://www.w3.org/1999/xlink"
_DROP = {"metadata", "style"}
_URL_REF = re.compile(r"url\(#([^)]+)\)")
#: Legend labels of MLPipeline.eda.forecast_figure -> what they mean on the dashboard.
_RELABEL = {
    "training data": "history",
    "held-out actual": "held-out actuals",
    "forecast mean": "forecast mean",
    "80% interval": "forecast 80% interval",
    "95% interval": "forecast 95% interval",
}


@dataclass(frozen=True)
class ChartInputs:
    """What one series' chart is drawn from, on the server (SVG) and in the browser (JSON)."""

    kind: str
    forecast: list[dict[str, Any]]  # inference.forecast's rows: the numbers POST /forecast answers
    assumption: str | None
    history: pd.Series
    holdout: pd.DataFrame | None
    #: the field naming a period in the forecast rows ("month", or "period" for other frequencies)
    field: str = "month"


@dataclass(frozen=True)
class Marker:
    """An actual recorded through POST /actuals, checked against a 95% interval."""

    month: pd.Timestamp
    value: float
    anomaly: bool


def domain_figure(
    history: pd.Series,
    holdout: pd.DataFrame | None,
    forecast: pd.DataFrame,
    markers: Sequence[Marker],
    title: str,
    calendar: Calendar = MONTHLY,
) -> Figure:
    """History, holdout check, forecast path with 80/95% bands, and recorded actuals."""
    if holdout is not None and len(holdout):
        start = holdout.index[0]
        train, test = history[history.index < start], history[history.index >= start]
    else:
        train, test = history, None
    fig = forecast_figure(train, test, forecast, title, calendar=calendar)
    fig.set_size_inches(*CHART_SIZE)
    ax = fig.axes[0]
    for artist in (*ax.lines, *ax.collections):
        label = str(artist.get_label())
        if label in _RELABEL:
            artist.set_label(_RELABEL[label])
    if holdout is not None and len(holdout):
        half = (history.index[1] - history.index[0]) / 2 if len(history) > 1 else pd.Timedelta(days=15)
        ax.axvspan(holdout.index[0] - half, holdout.index[-1] + half, color="0.92", lw=0,
                   zorder=0, label="held-out period")
        ax.fill_between(holdout.index, holdout["lower_95"], holdout["upper_95"], color="tab:green", alpha=0.15,
                        lw=0, label="holdout-model 95% interval")
        ax.plot(holdout.index, holdout["mean"], "--", color="tab:green", lw=1.4,
                label="holdout-model forecast")
    normal = [m for m in markers if not m.anomaly]
    odd = [m for m in markers if m.anomaly]
    if normal:
        ax.scatter([m.month for m in normal], [m.value for m in normal], s=28, facecolors="none",
                   edgecolors="tab:purple", lw=1.2, zorder=4, label="recorded actual, inside 95%")
    if odd:
        ax.scatter([m.month for m in odd], [m.value for m in odd], s=60, marker="X", color="tab:red",
                   zorder=5, label="anomaly: actual outside 95%")
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize=10, frameon=False)
    return fig


def _months(index, field: str = "month") -> list[str]:
    """Periods (timestamps) as the API writes them: YYYY-MM for months, ISO 8601 UTC otherwise."""
    return [stamp.strftime("%Y-%m" if field == "month" else ISO_FORMAT) for stamp in index]


def _floats(values) -> list[float]:
    return [float(v) for v in values]


def chart_data(inputs: ChartInputs, markers: Sequence[Marker], levels: Sequence[float]) -> dict[str, Any]:
    """One series' chart as JSON columns (a month list and one number list per line or band bound).

    Columns rather than rows: that is the shape the browser's chart takes, and it keeps the body
    about half the size. The forecast columns are :attr:`ChartInputs.forecast` unchanged.
    """
    bounds = [f"{side}_{level:g}" for level in levels for side in ("lower", "upper")]
    holdout = inputs.holdout
    return {
        "kind": inputs.kind,
        "assumption": inputs.assumption,
        "levels": [float(level) for level in levels],
        "history": {"month": _months(inputs.history.index, inputs.field),
                    "value": _floats(inputs.history.to_numpy())},
        "holdout": None if holdout is None or not len(holdout) else {
            "month": _months(holdout.index, inputs.field),
            **{name: _floats(holdout[name]) for name in ("mean", "lower_95", "upper_95")},
        },
        "forecast": {
            "month": [row[inputs.field] for row in inputs.forecast],
            **{name: [float(row[name]) for row in inputs.forecast] for name in ("mean", *bounds)},
        },
        "actuals": {
            "month": _months([m.month for m in markers], inputs.field),
            "value": [float(m.value) for m in markers],
            "anomaly": [bool(m.anomaly) for m in markers],
        },
    }


def domain_svg(
    history: pd.Series,
    holdout: pd.DataFrame | None,
    forecast: pd.DataFrame,
    markers: Sequence[Marker],
    title: str,
    prefix: str,
    description: str | None = None,
    calendar: Calendar = MONTHLY,
) -> str:
    """:func:`domain_figure` as an inline ``<svg>`` element (see :func:`inline_svg`).

    ``title`` is drawn above the plot; ``description`` (default: the title) is the SVG's
    ``<title>``, what screen readers announce.
    """
    buffer = io.StringIO()
    # font sizes are fixed when text is created, so the rc context covers drawing and saving
    with _RENDER_LOCK, matplotlib.rc_context(_SVG_RC):
        fig = domain_figure(history, holdout, forecast, markers, title, calendar)
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return inline_svg(buffer.getvalue(), prefix, description or title)


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def _prefixed(value: str, prefix: str) -> str:
    return _URL_REF.sub(lambda m: f"url(#{prefix}-{m.group(1)})", value)


def inline_svg(svg: str, prefix: str, title: str) -> str:
    """Rewrite matplotlib's SVG document into an element safe to inline under a strict CSP."""
    root = ET.fromstring(svg)
    for parent in list(root.iter()):
        for child in list(parent):
            if _local(child.tag) in _DROP:
                parent.remove(child)
    for element in root.iter():
        element.tag = _local(element.tag)
        attributes = {}
        for key, value in element.attrib.items():
            name = _local(key)
            if key.startswith(f"{{{_XLINK_NS}}}"):
                name = f"xlink:{name}"
            if name == "style":  # "fill: #fff; stroke-width: 1" -> fill="#fff" stroke-width="1"
                for declaration in value.split(";"):
                    prop, _, val = declaration.partition(":")
                    if prop.strip() and val.strip():
                        attributes[prop.strip()] = val.strip()
                continue
            if name == "id":
                value = f"{prefix}-{value}"
            elif name in ("href", "xlink:href") and value.startswith("#"):
                value = f"#{prefix}-{value[1:]}"
            elif "url(#" in value:
                value = _prefixed(value, prefix)
            attributes[name] = value
        element.attrib.clear()
        element.attrib.update(attributes)
    viewbox = root.get("viewBox")
    root.attrib.clear()
    root.attrib.update(
        {
            "xmlns": _SVG_NS,
            "xmlns:xlink": _XLINK_NS,
            "viewBox": viewbox or "",
            "class": "chart",
            "role": "img",
            "aria-labelledby": f"{prefix}-title",
            # what matplotlib's <style> set for every element; inherited, so children override it
            "stroke-linejoin": "round",
            "stroke-linecap": "butt",
        }
    )
    heading = ET.Element("title", {"id": f"{prefix}-title"})
    heading.text = title
    root.insert(0, heading)
    return ET.tostring(root, encoding="unicode", short_empty_elements=True)


class ChartCache:
    """One rendered value per (model version, domain), redrawn when its live markers change.

    Entries remember the signature of what they were drawn from (the recorded actuals); a
    different signature redraws that domain only. A new model version clears every entry.
    """

    def __init__(self) -> None:
        self._version: str | None = None
        self._entries: dict[str, tuple[Any, Any]] = {}
        self._lock = threading.Lock()

    def get(self, version: str, domain: str, signature: Any, render: Callable[[], Any]) -> Any:
        with self._lock:
            if version != self._version:
                self._entries.clear()
                self._version = version
            hit = self._entries.get(domain)
            if hit is not None and hit[0] == signature:
                return hit[1]
        value = render()  # outside the lock: other domains need not wait
        with self._lock:
            if self._version == version:
                self._entries[domain] = (signature, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._version = None

    def __len__(self) -> int:
        return len(self._entries)
