"""Logging set-up shared by Engine.py and the service: plain text or one JSON object per line."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sys
import time

LOG_FORMATS = ("text", "json")
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, ISO 8601), level, logger, message and extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update({k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")})
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at emit time (test runners swap it)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value):
        pass


def configure_logging(fmt: str = "text", level: int = logging.INFO, stream=None) -> None:
    """Route the root logger to ``stream`` (default: stdout) in ``fmt`` ('text' or 'json').

    Replaces only the handler an earlier call installed, so other handlers (pytest's caplog,
    a host application's) stay.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler(stream) if stream is not None else _StdoutHandler()
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    handler._callcenter_gp = True
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_callcenter_gp", False)] + [handler]
    root.setLevel(level)


@contextlib.contextmanager
def timed_step(logger: logging.Logger, step: str, **fields):
    """Log the start and the duration of a pipeline step."""
    logger.info("%s: started", step, extra={"step": step, **fields})
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    logger.info("%s: done in %.2f s", step, seconds, extra={"step": step, "seconds": round(seconds, 3), **fields})
