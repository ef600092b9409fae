"""``GET /``: the operators' dashboard, rendered on the server (Jinja2 templates, inline SVG charts).

The page shows, for the served model: one chart per series (service.charts) when it has up to
``MAX_CHARTS`` of them, else an overview table of every series (a page at a time, sortable by recent
volume and holdout error) with a picker that draws one (``/?series=<id>``); the holdout metrics per
kind of the charted series with the preferred kind and the reason it was chosen; the model version,
training window and training time, the latest logged predictions, live accuracy once actuals
exist, and a form that calls ``POST /predict`` from ``static/dashboard.js``. In the browser,
``static/charts.js`` redraws each chart with uPlot (vendored in ``static/vendor/uplot/``) from
``GET /dashboard/chart?series=<id>``, the JSON of one series' chart, whose forecast is the
``POST /forecast`` computation; the SVG is what a reader without JavaScript sees. With no model
loaded it answers 503 with an HTML page giving the registry's reason. Series ids are data: they are
escaped in the page (Jinja's autoescape) and element ids are built from their hash.

Anomalies: an actual recorded through ``POST /actuals`` is an anomaly when it falls outside the
95% interval of the newest logged prediction for its month and domain (what the service told
someone). When no prediction with a 95% interval was logged for that month, it is checked
against the served model instead (preferred kind, the ``/anomalies`` computation at 95%, with
regressors filled as ``/predict`` fills them). Actuals outside the months the model serves (the
first training month, or more than the forecast range past the window) are not checked.

Security: every dashboard response (and the static files) carries a Content-Security-Policy that
allows scripts, styles and requests from this origin only (no inline script anywhere), plus
nosniff, DENY framing and no referrer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pandas as pd
from flask import Blueprint, current_app, render_template, request

from MLPipeline.artifacts import series_key
from MLPipeline.calendars import period_field
from MLPipeline.config import DEFAULT_LEVELS, SEASON_LENGTH
from service import charts, inference
from service.api import PREDICTION_LOG_KEY, REGISTRY_KEY
from service.drift import drift_reasons
from service.errors import ApiError
from service.loaded import series_summary

FORECAST_MONTHS = SEASON_LENGTH  # the forecast path drawn on each chart
MAX_CHARTS = 12  # series drawn one chart each; above this the page shows the overview and a picker
OVERVIEW_PAGE = 50  # overview rows per page
ORDERS = ("volume", "error", "data")
LATEST_ROWS = 10  # logged predictions listed on the page
ANOMALY_LEVEL = 95.0
CHARTS_KEY = "dashboard_charts"
#: Holdout metrics shown in the table: (key in manifest metrics, column heading, format).
METRIC_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("mae", "MAE (calls)", "calls"),
    ("rmse", "RMSE (calls)", "calls"),
    ("mape", "MAPE %", "num"),
    ("smape", "sMAPE %", "num"),
    ("mase", "MASE", "ratio"),
    ("msis", "MSIS", "ratio"),
    ("coverage_80", "80% coverage", "share"),
    ("coverage_95", "95% coverage", "share"),
)

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",  # the form's fetch to /predict
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

logger = logging.getLogger(__name__)
bp = Blueprint("dashboard", __name__, template_folder="templates")


# ------------------------------------------------------------------ live log


@dataclass
class LiveLog:
    """What the prediction log adds to the page (empty when there is no log)."""

    enabled: bool = False
    problem: str | None = None
    latest: list[dict[str, Any]] = field(default_factory=list)
    accuracy: list[dict[str, Any]] = field(default_factory=list)
    latest_version: str | None = None
    checked: list[dict[str, Any]] = field(default_factory=list)  # every actual checked, by domain/period

    def markers(self, series_id: str) -> list[charts.Marker]:
        return [
            charts.Marker(c["stamp"], c["value"], c["anomaly"]) for c in self.checked
            if c["domain"] == series_id
        ]

    @property
    def drifting(self) -> list[dict[str, Any]]:
        return [d for d in self.accuracy if d.get("drift")]

    @property
    def anomalies(self) -> list[dict[str, Any]]:
        return [c for c in self.checked if c["anomaly"]]


def _newest_logged(log, domain: str, labels: list[str], frequency: str) -> dict[str, dict[str, Any]]:
    """period label -> the newest logged prediction for it that carries a 95% interval."""
    from service.store import MAX_PAGE
    from service.store.rows import period_value

    field = period_field(frequency)
    rows, _ = log.predictions(domain=domain, period_from=period_value(min(labels), frequency),
                              period_to=period_value(max(labels), frequency), limit=MAX_PAGE)
    newest: dict[str, dict[str, Any]] = {}
    wanted = set(labels)
    for row in rows:  # newest first
        if row.get("lower_95") is not None and row.get(field) in wanted:
            newest.setdefault(row[field], row)
    return newest


def check_actuals(model, log, actuals: list[dict[str, Any]], series_ids) -> list[dict[str, Any]]:
    """Each actual of the given series inside its served range, against a logged or the model's 95% interval.

    ``actuals`` are the log's for the model's frequency (``PredictionLog.actuals``), periods named as
    the API names them; each checked one carries its label under that name and its ``stamp``.
    """
    calendar = model.calendar
    key = calendar.field
    checked = []
    for domain in series_ids:
        info = model.series[domain].info
        mine = []
        for a in actuals:
            if a["domain"] != domain:
                continue
            ordinal = calendar.ordinal(a[key])
            if info.first < ordinal <= model.series[domain].last_served:
                mine.append({**a, "ordinal": ordinal})
        if not mine:
            continue
        logged = _newest_logged(log, domain, [a[key] for a in mine], calendar.frequency)
        unlogged = [a for a in mine if a[key] not in logged]
        scored: dict[str, dict[str, Any]] = {}
        if unlogged:
            observations = [SimpleNamespace(at=(key, a[key]), value=a["value"], regressors={}) for a in unlogged]
            try:
                kind, rows, _ = inference.anomalies(model, domain, observations, level=ANOMALY_LEVEL)
            except ApiError as exc:  # the model cannot score these periods: leave them unchecked
                logger.warning("dashboard: actuals for %s not checked: %s", domain, exc.message)
                rows = []
            for row in rows:
                scored[row[key]] = {**row, "against": f"served model ({kind})"}
        stamps = calendar.index([a["ordinal"] for a in mine])
        for a, stamp in zip(mine, stamps, strict=True):
            value = float(a["value"])
            label = a[key]
            if label not in logged and label not in scored:
                continue
            if label in logged:
                row = logged[label]
                lower, upper, mean = row["lower_95"], row["upper_95"], row["mean"]
                against = f"logged prediction {row['request_id'][:12]} ({row['model_version']})"
            else:
                row = scored[label]
                lower, upper, mean, against = row["lower"], row["upper"], row["mean"], row["against"]
            checked.append(
                {
                    "domain": domain,
                    key: label,
                    "stamp": stamp,
                    "value": value,
                    "mean": mean,
                    "lower": lower,
                    "upper": upper,
                    "anomaly": bool(value < lower or value > upper),
                    "against": against,
                }
            )
    return checked


def live_log(model, series_ids) -> LiveLog:
    """Latest predictions, live accuracy and the charted series' checked actuals; a database problem
    becomes a note."""
    log = current_app.extensions.get(PREDICTION_LOG_KEY)
    if log is None:
        return LiveLog()
    from service.store import PredictionLogUnavailable

    live = LiveLog(enabled=True)
    try:
        live.latest, _ = log.predictions(limit=LATEST_ROWS)
        accuracy = log.accuracy()
        live.latest_version = accuracy["latest_model_version"]
        live.accuracy = [d for d in accuracy["domains"] if d["all_versions"]["count"]]
        metrics = model.bundle.manifest.get("metrics") or {}
        for d in live.accuracy:
            served = model.series.get(d["domain"])
            holdout = (metrics.get(d["domain"]) or {}).get(served.info.preferred) or {} if served else {}
            d["drift"] = drift_reasons(d["latest_version"], holdout)
        live.checked = (check_actuals(model, log, log.actuals(model.calendar.frequency), series_ids)
                        if series_ids else [])
    except PredictionLogUnavailable as exc:
        live.problem = str(exc)
    return live


# -------------------------------------------------------------------- charts


def chart_id(series_id: str) -> str:
    """An element id for a series' chart: from its hash, since ids are data (any characters)."""
    return f"chart-{series_key(series_id)}"


def forecast_steps(calendar) -> int:
    """The forecast path drawn: a year of months, or two of the shortest cycles of other frequencies."""
    return FORECAST_MONTHS if calendar.monthly else 2 * calendar.season


def chart_inputs(model, domain: str) -> charts.ChartInputs:
    """The preferred kind's forecast path as ``POST /forecast`` computes it, the history and the holdout.

    A sub-monthly history is drawn from its last few weeks (ten forecast paths' worth): a year of
    half-hours is more points than a chart can show."""
    calendar = model.calendar
    steps = forecast_steps(calendar)
    kind, rows, assumption = inference.forecast(model, domain, steps, levels=DEFAULT_LEVELS)
    history, _ = model.bundle.history[domain].to_pandas(calendar=calendar)
    holdout = model.bundle.holdout.get((domain, kind))
    if not calendar.monthly:
        history = history.iloc[-max(10 * steps, 0 if holdout is None else len(holdout) + 2 * steps):]
    return charts.ChartInputs(kind, rows, assumption, history, holdout, calendar.field)


def domain_chart(model, domain: str, markers: list[charts.Marker]) -> dict[str, Any]:
    """The series' chart (inline SVG) with its caption facts, cached per model version."""
    cache: charts.ChartCache = current_app.extensions[CHARTS_KEY]
    signature = tuple((m.month, m.value, m.anomaly) for m in markers)

    def render() -> dict[str, Any]:
        inputs = chart_inputs(model, domain)
        kind = inputs.kind
        calendar = model.calendar
        path = pd.DataFrame(inputs.forecast)
        labels = path.pop(calendar.field)
        path.index = calendar.index([calendar.ordinal(m) for m in labels])
        heading = f"{domain} ({kind} model)"
        title = (f"{domain}: volume per {calendar.unit}, held-out check and {len(path)}-{calendar.unit} forecast "
                 f"({kind} model)")
        svg = charts.domain_svg(inputs.history, inputs.holdout, path, markers, heading, chart_id(domain), title,
                                calendar)
        return {
            "domain": domain,
            "id": chart_id(domain),
            "kind": kind,
            "title": title,
            "svg": svg,
            "assumption": inputs.assumption,
            "first": labels.iloc[0],
            "last": labels.iloc[-1],
            "anomalies": sum(m.anomaly for m in markers),
            "actuals": len(markers),
        }

    return cache.get(model.version, domain, signature, render)


# --------------------------------------------------------------------- views


def metric_rows(model, series_ids) -> list[dict[str, Any]]:
    """Holdout metrics per kind of the given series (from the manifest), preferred flagged."""
    manifest = model.bundle.manifest
    selection = manifest.get("selection") or {}
    metrics = manifest.get("metrics") or {}
    rows = []
    for sid in series_ids:
        info = model.series[sid].info
        for kind in info.kinds:
            rows.append({
                "domain": sid,
                "kind": kind,
                "preferred": kind == info.preferred,
                "metrics": (metrics.get(sid) or {}).get(kind) or {},
                "reason": (selection.get(sid) or {}).get("reason"),
            })
    return rows


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.args.get(name, default))
    except ValueError:
        return default
    return min(max(value, low), high)


def overview(model, order: str, page: int) -> dict[str, Any]:
    """One page of the overview table: the series in ``order`` (precomputed at load: O(page) here)."""
    ids = model.orders[order]
    pages = max(1, -(-len(ids) // OVERVIEW_PAGE))
    page = min(page, pages)
    rows = [series_summary(model, sid) for sid in ids[(page - 1) * OVERVIEW_PAGE:page * OVERVIEW_PAGE]]
    return {"rows": rows, "order": order, "page": page, "pages": pages, "total": len(ids)}


def series_markers(model, domain: str) -> list[charts.Marker]:
    """The series' checked actuals for its chart; none when there is no log or it cannot be read
    (the page says why; a chart without markers is still worth drawing)."""
    log = current_app.extensions.get(PREDICTION_LOG_KEY)
    if log is None:
        return []
    from service.store import PredictionLogUnavailable

    try:
        actuals = log.actuals(model.calendar.frequency)
        return LiveLog(checked=check_actuals(model, log, actuals, [domain])).markers(domain)
    except PredictionLogUnavailable as exc:
        logger.warning("dashboard: actuals for %s not drawn: %s", domain, exc)
        return []


@bp.route("/dashboard/chart")
def chart_json():
    """One series' chart as JSON (``?series=<id>``), what ``static/charts.js`` draws: one series per
    request, so its cost does not grow with the number of series."""
    model = current_app.extensions[REGISTRY_KEY].current
    if model is None:
        raise ApiError(503, "model_not_loaded", "no model is loaded")
    domain = request.args.get("series")
    if not domain:
        raise ApiError(422, "missing_field", "give the series: /dashboard/chart?series=<id>", "series")
    domain = inference.check_series(model, domain, "series")
    data = charts.chart_data(chart_inputs(model, domain), series_markers(model, domain), DEFAULT_LEVELS)
    return {"series": domain, "model_version": model.version, **data}, 200, {"Cache-Control": "no-store"}


def _page(template: str, status: int, **context: Any):
    headers = {"Cache-Control": "no-store"}
    if status == 503:
        headers["Retry-After"] = "10"  # the registry retries loading by itself
    return render_template(template, **context), status, headers


@bp.route("/")
def index():
    registry = current_app.extensions[REGISTRY_KEY]
    model = registry.current
    if model is None:
        return _page("unavailable.html", 503, reason=registry.reason or "unknown")
    many = len(model.series) > MAX_CHARTS
    picked = request.args.get("series", "").strip()[:200] or None
    missing, suggestions = None, []
    if picked is not None and picked not in model.series:
        missing, suggestions, picked = picked, model.close_matches(picked), None
    charted = [picked] if picked is not None else ([] if many else list(model.ids))
    order = request.args.get("order", "volume")
    order = order if order in ORDERS else "volume"
    live = live_log(model, charted)
    charts_ = [domain_chart(model, d, live.markers(d)) for d in charted]
    manifest = model.bundle.manifest
    first = charted[0] if charted else model.ids[0]
    info = model.series[first].info
    assumed = model.series[first].assumed
    return _page(
        "dashboard.html",
        200,
        info=model.info,
        manifest=manifest,
        holdout_months=manifest.get("holdout_months"),
        charts=charts_,
        many=many,
        picked=picked,
        missing=missing,
        suggestions=suggestions,
        overview=overview(model, order, _int_arg("page", 1, 1, 10**6)) if many else None,
        forecast_months=forecast_steps(model.calendar),
        calendar=model.calendar,
        metric_columns=METRIC_COLUMNS,
        metric_rows=metric_rows(model, charted),
        live=live,
        domains=list(model.ids) if not many else [],
        form_series=first,
        regressors=[(name, None if assumed is None else float(v)) for name, v in
                    zip(model.regressors, assumed if assumed is not None else [None] * len(model.regressors),
                        strict=True)],
        next_month=model.calendar.label(info.last + 1),
    )


def _secure(response):
    """Security headers on the dashboard's responses and its static files."""
    if request.blueprint == bp.name or request.endpoint == "static":
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


# ------------------------------------------------------------------ filters


def format_number(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if fmt == "calls":
        return f"{value:,.0f}"
    if fmt == "share":
        return f"{100 * value:.0f}%"
    if fmt == "ratio":
        return f"{value:.3f}"
    return f"{value:.2f}"


@bp.record_once
def _setup(state) -> None:
    """What the page needs from the app it is registered on: the chart cache, the number filter and
    the security headers (``GET /`` is a page, not an API operation: it is not in /openapi.json)."""
    state.app.extensions[CHARTS_KEY] = charts.ChartCache()
    state.app.add_template_filter(format_number, "number")
    state.app.after_request(_secure)
