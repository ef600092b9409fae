"""One JSON error shape for every failure: ``{"error": {"code", "message", "field"}}``.

Views raise :class:`ApiError`; werkzeug's HTTP errors (404, 405, 413, ...) and pydantic's
validation errors are translated into the same shape here, so no HTML page and no stack
trace ever reaches a client.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

#: werkzeug status -> our error code (anything else becomes "http_<status>").
HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    417: "expectation_failed",
    431: "headers_too_large",
    500: "internal_error",
    501: "not_implemented",
}

#: Last field name in a validation error's location -> our code for that field.
FIELD_CODES: dict[str, str] = {
    "month": "invalid_month",
    "regressors": "invalid_regressor",
    "level": "invalid_level",
    "domain": "unknown_domain",
    "domains": "unknown_domain",
    "kind": "invalid_kind",
    "horizon": "invalid_horizon",
    "instances": "invalid_instances",
    "observations": "invalid_observations",
    "value": "invalid_value",
    "cursor": "invalid_cursor",
}

#: pydantic error types that say the same thing whatever the field.
TYPE_CODES: dict[str, str] = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "model_type": "invalid_body",
    "model_attributes_type": "invalid_body",
}

#: Codes that mean "too many items" for list fields, whatever pydantic calls them.
TOO_LONG_CODES: dict[str, str] = {
    "instances": "too_many_instances",
    "observations": "too_many_observations",
}


class ApiError(Exception):
    """An error a client caused (or must know about), rendered in the one JSON shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    response = current_app.json.response(error_body(code, message, field))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def field_path(loc: tuple[Any, ...]) -> str | None:
    """pydantic location -> "instances[3].month" (None for the body as a whole)."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or None


def _code_for(error: dict[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    if "code" in ctx:  # raised by our schemas (service.schemas.invalid), code chosen there
        return ctx["code"]
    kind = error["type"]
    if kind in TYPE_CODES:
        return TYPE_CODES[kind]
    names = [part for part in error["loc"] if isinstance(part, str)]
    name = names[-1] if names else ""
    if kind == "too_long" and name in TOO_LONG_CODES:
        return TOO_LONG_CODES[name]
    if "regressors" in names:  # a value inside a regressors mapping, whatever the regressor's name
        return "invalid_regressor"
    return FIELD_CODES.get(name, "invalid_value")


def from_validation_error(exc: ValidationError) -> ApiError:
    """The first problem pydantic found, as a 422 with a specific code and field."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    ctx = first.get("ctx") or {}
    where = field_path(tuple(first["loc"]))
    field = ctx.get("field") or where
    if ctx.get("field") and where and not field.startswith(str(first["loc"][0])):
        field = f"{where}.{field}"  # a nested object's validator names its own field ("instances[0]" + "phone_lines")
    message = first["msg"]
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s) in this request)"
    return ApiError(422, _code_for(first), message, field)


def _handle_api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)


def _http_message(status: int, exc: HTTPException, allow: str | None) -> str:
    if status == 404:
        return f"no route {request.path}; the API is described at /openapi.json"
    if status == 405:
        return f"{request.method} is not allowed on {request.path}; allowed: {allow}"
    if status == 413:
        return f"the request body is larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes"
    return exc.description or exc.name


def _handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    headers = {}
    allow = exc.get_response().headers.get("Allow")
    if allow:  # 405 must say which methods are allowed
        headers["Allow"] = allow
    message = _http_message(status, exc, allow)
    return error_response(status, HTTP_CODES.get(status, f"http_{status}"), message, None, headers)


def _handle_validation_error(exc: ValidationError) -> Response:
    return _handle_api_error(from_validation_error(exc))


def _handle_unexpected(exc: Exception) -> Response:
    # Logged with the trace for operators; the client sees only the shape.
    log.exception("unhandled error while serving a request")
    return error_response(500, "internal_error", "internal server error")


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(ValidationError, _handle_validation_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
