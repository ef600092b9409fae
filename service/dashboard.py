"""``GET /``: the operators' dashboard, rendered on the server (Jinja2 templates, inline SVG charts).

The page shows, for the served model: one chart per domain (service.charts), the holdout metrics
per domain and kind with the preferred kind and the reason it was chosen, the model version,
training window and training time, the latest logged predictions, live accuracy once actuals
exist, and a form that calls ``POST /predict`` from ``static/dashboard.js``. With no model
loaded it answers 503 with an HTML page giving the registry's reason.

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
import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pandas as pd
from flask import Blueprint, current_app, render_template, request

from MLPipeline.config import DEFAULT_LEVELS, DOMAINS, REGRESSORS, SEASON_LENGTH
from MLPipeline.months import format_month, parse_month
from service import charts, inference
from service.api import PREDICTION_LOG_KEY, REGISTRY_KEY
from service.errors import ApiError

FORECAST_MONTHS = SEASON_LENGTH  # the forecast path drawn on each chart
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
    checked: list[dict[str, Any]] = field(default_factory=list)  # every actual checked, by domain/month

    def markers(self, domain: str) -> list[charts.Marker]:
        return [
            charts.Marker(parse_month(c["month"]), c["value"], c["anomaly"]) for c in self.checked if c["domain"] == domain
        ]

    @property
    def anomalies(self) -> list[dict[str, Any]]:
        return [c for c in self.checked if c["anomaly"]]


def _newest_logged(log, domain: str, months: list[str]) -> dict[str, dict[str, Any]]:
    """month -> the newest logged prediction for it that carries a 95% interval."""
    from service.store import MAX_PAGE

    rows, _ = log.predictions(domain=domain, month_from=min(months), month_to=max(months), limit=MAX_PAGE)
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:  # newest first
        if row.get("lower_95") is not None and row["month"] in months:
            newest.setdefault(row["month"], row)
    return newest


def check_actuals(model, log, actuals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each actual inside the served range, against a logged or the model's 95% interval."""
    checked = []
    for domain in DOMAINS:
        mine = [
            a for a in actuals
            if a["domain"] == domain and model.first_month < parse_month(a["month"]) <= model.last_month
        ]
        if not mine:
            continue
        logged = _newest_logged(log, domain, [a["month"] for a in mine])
        unlogged = [a for a in mine if a["month"] not in logged]
        scored: dict[str, dict[str, Any]] = {}
        if unlogged:
            observations = [
                SimpleNamespace(month=a["month"], value=a["value"], **dict.fromkeys(REGRESSORS)) for a in unlogged
            ]
            try:
                kind, rows, _ = inference.anomalies(model, domain, observations, level=ANOMALY_LEVEL)
            except ApiError as exc:  # the model cannot score these months: leave them unchecked
                logger.warning("dashboard: actuals for %s not checked: %s", domain, exc.message)
                rows = []
            for row in rows:
                scored[row["month"]] = {**row, "against": f"served model ({kind})"}
        for a in mine:
            value = float(a["value"])
            if a["month"] not in logged and a["month"] not in scored:
                continue
            if a["month"] in logged:
                row = logged[a["month"]]
                lower, upper, mean = row["lower_95"], row["upper_95"], row["mean"]
                against = f"logged prediction {row['request_id'][:12]} ({row['model_version']})"
            else:
                row = scored[a["month"]]
                lower, upper, mean, against = row["lower"], row["upper"], row["mean"], row["against"]
            checked.append(
                {
                    "domain": domain,
                    "month": a["month"],
                    "value": value,
                    "mean": mean,
                    "lower": lower,
                    "upper": upper,
                    "anomaly": bool(value < lower or value > upper),
                    "against": against,
                }
            )
    return checked


def live_log(model) -> LiveLog:
    """Latest predictions, live accuracy and checked actuals; a database problem becomes a note."""
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
        live.checked = check_actuals(model, log, log.actuals())
    except PredictionLogUnavailable as exc:
        live.problem = str(exc)
    return live


# -------------------------------------------------------------------- charts


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def domain_chart(model, domain: str, markers: list[charts.Marker]) -> dict[str, Any]:
    """The domain's chart (inline SVG) with its caption facts, cached per model version."""
    cache: charts.ChartCache = current_app.extensions[CHARTS_KEY]
    signature = tuple((m.month, m.value, m.anomaly) for m in markers)

    def render() -> dict[str, Any]:
        kind, rows, assumption = inference.forecast(model, domain, FORECAST_MONTHS, levels=DEFAULT_LEVELS)
        path = pd.DataFrame(rows)
        path.index = pd.DatetimeIndex([parse_month(m) for m in path.pop("month")], name="month")
        heading = f"{domain} ({kind} model)"
        title = f"{domain}: calls per month, held-out check and {FORECAST_MONTHS}-month forecast ({kind} model)"
        holdout = model.bundle.holdout.get((domain, kind))
        svg = charts.domain_svg(
            model.bundle.history[domain], holdout, path, markers, heading, f"chart-{_slug(domain)}", title
        )
        return {
            "domain": domain,
            "id": f"chart-{_slug(domain)}",
            "kind": kind,
            "title": title,
            "svg": svg,
            "assumption": assumption,
            "first": format_month(path.index[0]),
            "last": format_month(path.index[-1]),
            "anomalies": sum(m.anomaly for m in markers),
            "actuals": len(markers),
        }

    return cache.get(model.version, domain, signature, render)


# --------------------------------------------------------------------- views


def metric_rows(model) -> list[dict[str, Any]]:
    """Holdout metrics per domain and kind (from GET /model's description), preferred flagged."""
    selection = model.bundle.manifest.get("selection") or {}
    rows = []
    for entry in model.info["models"]:
        rows.append(
            {
                "domain": entry["domain"],
                "kind": entry["kind"],
                "preferred": entry["preferred"],
                "metrics": entry["holdout"] or {},
                "reason": (selection.get(entry["domain"]) or {}).get("reason"),
            }
        )
    return rows


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
    live = live_log(model)
    charts_ = [domain_chart(model, d, live.markers(d)) for d in DOMAINS]
    manifest = model.bundle.manifest
    return _page(
        "dashboard.html",
        200,
        info=model.info,
        manifest=manifest,
        holdout=manifest.get("holdout") or {},
        charts=charts_,
        forecast_months=FORECAST_MONTHS,
        metric_columns=METRIC_COLUMNS,
        metric_rows=metric_rows(model),
        live=live,
        domains=DOMAINS,
        next_month=format_month(pd.Timestamp(model.bundle.train_end) + pd.DateOffset(months=1)),
        assumed=model.assumed,
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


def init_app(app) -> None:
    """Register ``GET /`` (not part of /openapi.json: it is a page, not an API)."""
    if bp.name in app.blueprints:
        return
    app.extensions[CHARTS_KEY] = charts.ChartCache()
    app.add_template_filter(format_number, "number")
    app.after_request(_secure)
    app.register_blueprint(bp)
