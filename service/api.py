"""HTTP routes: thin views that validate with service.schemas, call service.inference, return JSON.

Every documented route is added with :func:`add_endpoint`, which (1) parses and validates the
JSON body / query string with the route's pydantic model (strict JSON, errors in our shape) and
(2) registers the same models with the app's SpecTree, which renders ``GET /openapi.json``.
Other blueprints (service.records, ...) can use :func:`add_endpoint` too, so the document
covers them without a second schema.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Flask, current_app, g, request
from pydantic import BaseModel, ValidationError
from spectree import Response, SecurityScheme, SecuritySchemeData, SpecTree
from werkzeug.exceptions import RequestEntityTooLarge

from service import downloads, inference
from service.downloads import Download
from service.errors import ApiError, from_validation_error
from service.registry import ModelUnavailable, Registry
from service.schemas import (
    AnomaliesRequest,
    AnomaliesResponse,
    DownloadQuery,
    ErrorResponse,
    ForecastRequest,
    ForecastResponse,
    HealthResponse,
    ModelInfo,
    PredictRequest,
    PredictResponse,
    ReadyResponse,
    ReloadResponse,
    SeriesDetail,
    SeriesPage,
    SeriesQuery,
)

REGISTRY_KEY = "model_registry"
OPENAPI_KEY = "openapi"
#: Extensions may append callables returning (name, problem-or-None); /ready reports them.
READINESS_KEY = "readiness_checks"
PREDICTION_LOG_KEY = "prediction_log"

#: Deepest JSON nesting a body may have (ours need 3: {"instances": [{...}]}); deeper is a 400.
MAX_JSON_DEPTH = 16
#: Headers on every API response (the dashboard adds its own Content-Security-Policy).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BODY_ERRORS = {400: ErrorResponse, 413: ErrorResponse, 415: ErrorResponse, 422: ErrorResponse}


# ------------------------------------------------------------------ plumbing


def create_openapi(app: Flask) -> SpecTree:
    """One SpecTree per app (it caches the document, and routes differ between apps)."""
    tree = SpecTree(
        "flask",
        mode="strict",
        annotations=False,
        title="callcenter-gp",
        description="Gaussian-process forecasts of monthly call-centre volumes.",
        version="1",
        validation_error_status=422,
        validation_error_model=ErrorResponse,
        naming_strategy=lambda model: model.__name__,  # "PredictRequest", not "PredictRequest.40832f5"
        security_schemes=[
            SecurityScheme(name="admin", data=SecuritySchemeData(type="http", scheme="bearer"))
        ],
    )
    app.extensions[OPENAPI_KEY] = tree
    return tree


def request_id() -> str:
    """The request's id: ``g.request_id`` if a logging extension set it, else X-Request-ID or new."""
    rid = g.get("request_id")
    if rid is None:
        supplied = request.headers.get("X-Request-ID", "")
        rid = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        g.request_id = rid
    return rid


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_json_body() -> Any:
    """The request body as JSON: 415 unless JSON, 413 over MAX_CONTENT_LENGTH, 400 if malformed."""
    mimetype = request.mimetype
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(
            415, "unsupported_media_type", "send the body as JSON with Content-Type: application/json"
        )
    raw = request.get_data(cache=True)  # raises 413 when Content-Length is past MAX_CONTENT_LENGTH
    if request.content_length is None and _continues_past(raw):
        raise RequestEntityTooLarge()
    if not raw.strip():
        raise ApiError(400, "malformed_json", "the request body is empty; send a JSON object")
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        data = None  # deeper than Python's recursion limit: refused just below
    except ValueError as exc:  # includes UnicodeDecodeError (and integers over 4,300 digits)
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    if data is None and raw.strip() != b"null" or not _within_depth(data, MAX_JSON_DEPTH):
        raise ApiError(
            400, "malformed_json", f"the JSON body is nested too deeply (more than {MAX_JSON_DEPTH} levels)"
        )
    return data


def _continues_past(raw: bytes) -> bool:
    """Whether a body without Content-Length (chunked) goes on past the MAX_CONTENT_LENGTH bytes read.

    werkzeug stops reading such a body at the limit without saying so: the truncated body would
    be served. One more byte from the server's stream tells the two apart.
    """
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    return limit is not None and len(raw) >= limit and bool(request.environ["wsgi.input"].read(1))


def _within_depth(data: Any, limit: int) -> bool:
    """Whether no JSON array/object in ``data`` sits deeper than ``limit`` (iterative: no recursion)."""
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return False
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


def _validate(model: type[BaseModel], data: Any) -> BaseModel:
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_body", f"expected a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def _json_by_default() -> bool:
    """Whether the Accept header leaves the answer JSON (absent, any type, or JSON itself)."""
    return request.headers.get("Accept", "*/*").strip() in ("*/*", "application/json")


def _as_json(result: Any) -> Any:
    """A view's dict (or (dict, status)) as a JSON response, exactly as Flask would render it.

    Done here because spectree, handed a dict, walks every row looking for pydantic models:
    half the time of a 100-instance /predict.
    """
    if isinstance(result, dict):
        return current_app.json.response(result)
    if isinstance(result, tuple) and result and isinstance(result[0], dict):
        return (current_app.json.response(result[0]), *result[1:])
    return result


def add_endpoint(
    target: Blueprint | Flask,
    tree: SpecTree,
    rule: str,
    view: Callable[..., Any],
    *,
    methods: tuple[str, ...] = ("GET",),
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    responses: dict[int, type[BaseModel] | None],
    tags: tuple[str, ...] = (),
    security: dict[str, list[str]] | None = None,
    download: Download | None = None,
) -> None:
    """Route ``rule`` to ``view(body=..., query=...)`` with validation and OpenAPI documentation.

    The operation id is the view's name. With ``download``, the answer's rows can also be had as
    CSV or .xlsx (service.downloads); ``query`` must then take DownloadQuery's fields, or be None
    (the view is not shown them).
    """
    view_query = query
    if download is not None and query is None:
        query = DownloadQuery

    @wraps(view)
    def handler(**kwargs: Any) -> Any:
        if body is not None:
            kwargs["body"] = _validate(body, read_json_body())
        # A request that asks for no file (no query string, no table in Accept) is the plain JSON
        # answer: /predict's hot path skips the query's validation and the Accept negotiation.
        plain = download is not None and view_query is None and not request.args and _json_by_default()
        asked = _validate(query, request.args.to_dict()) if query is not None and not plain else None
        if view_query is not None:
            kwargs["query"] = asked
        if download is None or asked is None:
            return _as_json(view(**kwargs))
        chosen = downloads.choose_format(asked)  # before the work: a format we cannot write is refused first
        return _as_json(downloads.respond(view(**kwargs), download, asked, chosen))

    statuses = dict(responses)
    if body is not None:
        statuses = {**_BODY_ERRORS, **statuses}
    elif query is not None:
        statuses = {422: ErrorResponse, **statuses}
    documented = tree.validate(
        json=body,
        query=query,
        resp=Response(**{f"HTTP_{status}": model for status, model in statuses.items()}),
        tags=tags,
        security=security,
        operation_id=view.__name__,
        skip_validation=True,  # validated above, so errors come out in our shape
    )(handler)
    target.add_url_rule(rule, endpoint=view.__name__, view_func=documented, methods=list(methods))


def registry() -> Registry:
    return current_app.extensions[REGISTRY_KEY]


def _model():
    try:
        return registry().get()
    except ModelUnavailable as exc:
        raise ApiError(503, "model_not_loaded", f"no model is loaded: {exc}") from None


def _record(endpoint: str, rows: list[dict[str, Any]], model) -> None:
    """Hand the rows to the prediction log (service.store) before the response is sent, then count them."""
    from service import metrics

    log = current_app.extensions.get(PREDICTION_LOG_KEY)
    if log is not None:
        log.record(request_id(), endpoint, rows, model.regressors, model.calendar.frequency)
    metrics.count_predictions(rows, model.metric_series)


# --------------------------------------------------------------------- views


def predict(body: PredictRequest):
    """Predict months for one or more instances.

    One instance inline (``month`` and regressor values by name) or up to 1,000 in ``instances``;
    every series of a model with up to 50, else the ones ``domains`` names.
    """
    model = _model()
    rows, assumption = inference.predict(
        model,
        body.instance_list(),
        domains=body.domains,
        levels=body.level,
        kind=body.kind,
        prefix=body.field_prefix(),
    )
    _record("predict", rows, model)
    return {"model_version": model.version, "assumption": assumption, "predictions": rows}


def forecast(body: ForecastRequest):
    """Forecast the next ``horizon`` months after the series' training window."""
    model = _model()
    kind, rows, assumption = inference.forecast(
        model, body.domain, body.horizon, regressors=body.regressors, levels=body.level, kind=body.kind
    )
    _record("forecast", rows, model)
    return {
        "model_version": model.version,
        "domain": body.domain,
        "kind": kind,
        "horizon": body.horizon,
        "assumption": assumption,
        "forecast": rows,
    }


def anomalies(body: AnomaliesRequest):
    """Score observed volumes: z-score, two-sided p-value, and whether each is an anomaly."""
    model = _model()
    kind, rows, assumption = inference.anomalies(
        model, body.domain, body.observations, level=body.level, kind=body.kind
    )
    return {
        "model_version": model.version,
        "domain": body.domain,
        "kind": kind,
        "level": body.level,
        "assumption": assumption,
        "observations": rows,
    }


def model_info():
    """Model version, training window, series count, kernels, holdout metrics and library versions."""
    return _model().info


def list_series(query: SeriesQuery):
    """The model's series, a page at a time: first and last month, served kind, holdout error.

    ``order`` sorts by data order, recent volume or holdout sMAPE; ``q`` keeps the ids that start
    with it (case-insensitive, in name order).
    """
    from service.loaded import series_summary, starting_with

    model = _model()
    offset = 0
    if query.cursor is not None:
        offset = _page_offset(query.cursor, query.order, query.q)
    if query.q is not None:
        lo, hi = starting_with(model, query.q)
        page = [sid for _, sid in model.by_name[lo + offset:min(hi, lo + offset + query.limit)]]
        total = hi - lo
    else:
        ids = model.orders[query.order]
        page = list(ids[offset:offset + query.limit])
        total = len(ids)
    end = offset + len(page)
    return {"model_version": model.version, "total": total,
            "series": [series_summary(model, sid) for sid in page],
            "next_cursor": _page_cursor(end, query.order, query.q) if end < total else None}


def series_detail(series_id: str):
    """One series: its months, served kind, holdout figures, notes and assumed regressor values."""
    from service.loaded import series_summary

    model = _model()
    inference.check_series(model, series_id, "series_id")
    entry = series_summary(model, series_id)
    assumed = model.series[series_id].assumed
    entry["assumed_regressors"] = {} if assumed is None else dict(zip(model.regressors, assumed.tolist(), strict=True))
    return entry


def _page_cursor(offset: int, order: str, q: str | None) -> str:
    raw = json.dumps([offset, order, q], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _page_offset(cursor: str, order: str, q: str | None) -> int:
    try:
        offset, was_order, was_q = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= 10**9:
            raise ValueError("offset")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ApiError(422, "invalid_cursor", "cursor is not one this service returned", "cursor") from None
    if (was_order, was_q) != (order, q):
        raise ApiError(422, "invalid_cursor", "the cursor belongs to another order or filter", "cursor")
    return offset


def health():
    """The process is alive (says nothing about the models)."""
    return {"status": "ok"}


def ready():
    """200 when models are loaded and verified (and every extension's check passes), else 503."""
    reg = registry()
    reg.refresh()
    model = reg.current
    checks = {"models": "ok" if model is not None else f"not loaded: {reg.reason}"}
    problems = [] if model is not None else [checks["models"]]
    if model is not None:
        # Informational: a refused manifest leaves the served model serving, so still ready.
        refused = reg.refused
        checks["manifest"] = "ok" if refused is None else f"refused, serving {model.version}: {refused}"
    for check in current_app.extensions.get(READINESS_KEY, []):
        name, problem = check()
        checks[name] = problem or "ok"
        if problem:
            problems.append(f"{name}: {problem}")
    body = {
        "status": "not_ready" if problems else "ready",
        "model_version": model.version if model else None,
        "reason": "; ".join(problems) or None,
        "checks": checks,
    }
    return body, (503 if problems else 200)


def reload_models():
    """Check the manifest now (``Authorization: Bearer $ADMIN_TOKEN``); a bad bundle is refused.

    Every worker follows a changed manifest.json by itself within RELOAD_SYNC_SECONDS; this makes
    the worker that answers look at once and say what it serves. 403 when ADMIN_TOKEN is not
    configured (admin routes disabled), 401 on a wrong token, 409 when the manifest on disk is
    refused (the previous model keeps serving).
    """
    from service.registry import ReloadRefused

    token = current_app.config.get("ADMIN_TOKEN") or ""
    if not token:
        raise ApiError(403, "admin_disabled", "admin routes are disabled: set ADMIN_TOKEN to enable them")
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.strip().encode(), token.encode()):
        raise ApiError(
            401,
            "unauthorized",
            "send Authorization: Bearer <ADMIN_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    reg = registry()
    try:
        previous, loaded = reg.reload()
    except ReloadRefused as exc:
        serving = reg.current.version if reg.current else None
        raise ApiError(409, "reload_refused", f"{exc} (still serving {serving or 'nothing'})") from None
    status = "unchanged" if previous == loaded.version else "reloaded"
    return {"status": status, "previous_version": previous, "model_version": loaded.version}


# ------------------------------------------------------------------- wiring


def create_blueprint(tree: SpecTree) -> Blueprint:
    bp = Blueprint("api", __name__)
    unavailable = {503: ErrorResponse}
    add_endpoint(
        bp,
        tree,
        "/predict",
        predict,
        methods=("POST",),
        body=PredictRequest,
        responses={200: PredictResponse, **unavailable},
        tags=("predictions",),
        download=Download("predictions"),
    )
    add_endpoint(
        bp,
        tree,
        "/forecast",
        forecast,
        methods=("POST",),
        body=ForecastRequest,
        responses={200: ForecastResponse, **unavailable},
        tags=("predictions",),
        download=Download("forecast"),
    )
    add_endpoint(
        bp,
        tree,
        "/anomalies",
        anomalies,
        methods=("POST",),
        body=AnomaliesRequest,
        responses={200: AnomaliesResponse, **unavailable},
        tags=("predictions",),
    )
    add_endpoint(bp, tree, "/model", model_info, responses={200: ModelInfo, **unavailable}, tags=("model",))
    add_endpoint(bp, tree, "/series", list_series, query=SeriesQuery, responses={200: SeriesPage, **unavailable},
                 tags=("model",))
    add_endpoint(bp, tree, "/series/<path:series_id>", series_detail,
                 responses={200: SeriesDetail, 422: ErrorResponse, **unavailable}, tags=("model",))
    add_endpoint(bp, tree, "/health", health, responses={200: HealthResponse}, tags=("operations",))
    add_endpoint(
        bp, tree, "/ready", ready, responses={200: ReadyResponse, 503: ReadyResponse}, tags=("operations",)
    )
    add_endpoint(
        bp,
        tree,
        "/admin/reload",
        reload_models,
        methods=("POST",),
        responses={200: ReloadResponse, 401: ErrorResponse, 403: ErrorResponse, 409: ErrorResponse},
        tags=("operations",),
        security={"admin": []},
    )
    bp.add_url_rule(
        "/openapi.json",
        endpoint="openapi",
        view_func=lambda: downloads.document(current_app.extensions[OPENAPI_KEY].spec),
    )
    bp.before_app_request(lambda: registry().refresh())
    bp.after_app_request(_secure)
    return bp


def _secure(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
