"""Logging set-up shared by Engine.py and the service: plain text or one JSON object per line."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sys
import time

LOG_FORMATS = ("text", "json")
#: Progress of long runs (series done / total, rate, ETA): on stderr, so the log on stdout stays a log.
PROGRESS_LOGGER = "MLPipeline.progress"
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


class _CurrentStream(logging.StreamHandler):
    """Writes to whatever ``sys.<name>`` is at emit time (test runners swap it)."""

    def __init__(self, name: str):
        self._stream_name = name
        super().__init__()

    @property
    def stream(self):
        return getattr(sys, self._stream_name)

    @stream.setter
    def stream(self, _value):
        pass


def _is_progress(record: logging.LogRecord) -> bool:
    return record.name == PROGRESS_LOGGER


def configure_logging(fmt: str = "text", level: int = logging.INFO, stream=None) -> None:
    """Route the root logger to ``stream`` (default: stdout) in ``fmt`` ('text' or 'json'), and the
    progress lines of :data:`PROGRESS_LOGGER` to stderr in the same format (with ``stream`` given,
    everything goes there).

    Replaces only the handlers an earlier call installed, so other handlers (pytest's caplog,
    a host application's) stay.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    formatter = JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    if stream is not None:
        handlers = [logging.StreamHandler(stream)]
    else:
        log, progress = _CurrentStream("stdout"), _CurrentStream("stderr")
        log.addFilter(lambda record: not _is_progress(record))
        progress.addFilter(_is_progress)
        handlers = [log, progress]
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._callcenter_gp = True
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_callcenter_gp", False)] + handlers
    root.setLevel(level)


@contextlib.contextmanager
def timed_step(logger: logging.Logger, step: str, **fields):
    """Log the start and the duration of a pipeline step."""
    logger.info("%s: started", step, extra={"step": step, **fields})
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    logger.info("%s: done in %.2f s", step, seconds, extra={"step": step, "seconds": round(seconds, 3), **fields})
