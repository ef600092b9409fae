"""Request logging for the service, on top of MLPipeline.logs (shared with Engine.py).

Every request gets a request id (the caller's ``X-Request-ID`` when it is a sane token, a new one
otherwise), echoed in the response header, stamped on every log line written while the request
runs, and closed by one access line carrying method, path, status and duration_ms. The format is
``LOG_FORMAT`` (``json``: one JSON object per line on stdout, the service's default; ``text``).
"""

from __future__ import annotations

import logging
import os
import time

from MLPipeline.logs import configure_logging

REQUEST_ID_HEADER = "X-Request-ID"
ACCESS_LOGGER = "callcenter.access"
DEFAULT_FORMAT = "json"  # the service's default; Engine.py defaults to text
#: Libraries that log routine start-up chatter at INFO in every worker.
QUIET_LOGGERS = ("alembic.runtime.plugins",)


class RequestIdFilter(logging.Filter):
    """Stamp the current request's id on every record logged while a request is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            from flask import g, has_request_context

            if has_request_context() and "request_id" in g:
                record.request_id = g.request_id
        return True


def configure_service_logging(fmt: str | None = None) -> str:
    """MLPipeline's logging set-up plus request ids on every line; returns the format used."""
    fmt = (fmt or os.environ.get("LOG_FORMAT") or DEFAULT_FORMAT).strip().lower()
    configure_logging(fmt)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())
    return fmt


def init_app(app) -> None:
    """Configure logging and add the request-id and access-log hooks."""
    from flask import g, request

    from service.api import request_id  # the one place request ids are chosen

    configure_service_logging(app.config.get("LOG_FORMAT"))
    access = logging.getLogger(ACCESS_LOGGER)

    @app.before_request
    def _assign_request_id() -> None:
        g.setdefault("request_started", time.perf_counter())
        request_id()

    @app.after_request
    def _log_request(response):
        rid = request_id()
        response.headers[REQUEST_ID_HEADER] = rid
        started = g.get("request_started")
        duration_ms = round((time.perf_counter() - started) * 1000, 3) if started is not None else None
        access.info(
            "%s %s %s %s ms request_id=%s",
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            rid,
            extra={
                "request_id": rid,
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
            },
        )
        return response
