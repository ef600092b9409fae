"""Prometheus metrics for the service, correct across gunicorn workers.

Under gunicorn every worker writes its counters to files in ``$PROMETHEUS_MULTIPROC_DIR``
(prometheus_client multiprocess mode) and ``GET /metrics`` sums them. prometheus_client picks
that mode when it is first imported, so this module imports it lazily: gunicorn.conf.py can import
the hooks below in the master, and ``prepare_multiprocess_dir`` sets the variable before any
worker imports the client. Without the variable (tests, ``flask run``) the ordinary in-process
registry is used.

Model version and seconds since training are computed at scrape time from the manifest (an
info metric cannot be aggregated across processes, and a gauge set at load time would go stale),
and so are the per-series holdout and live accuracy gauges (service.drift).
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import shutil
import tempfile
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from MLPipeline.config import MANIFEST_NAME, output_dir
from service.drift import AccuracyCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "callcenter"
UNMATCHED_ENDPOINT = "<unmatched>"  # 404s share one label value: paths are user input
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_TEMP_DIR_MARK = ".created-by-callcenter"


# --- gunicorn master hooks (no prometheus_client import here) --------------------------------


def prepare_multiprocess_dir() -> str:
    """gunicorn ``on_starting``: choose, create and empty the multiprocess directory.

    Stale files from an earlier run would add their counts to this one, so the directory is
    emptied. Without ``$PROMETHEUS_MULTIPROC_DIR`` a private temporary directory is made (and
    removed again by ``remove_multiprocess_dir``), so two servers on one host never share one.
    """
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        path = tempfile.mkdtemp(prefix="callcenter-prometheus-")
        Path(path, _TEMP_DIR_MARK).touch()
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.remove(stale)
    os.environ[MULTIPROC_ENV] = path  # inherited by the workers forked after this hook
    return path


def mark_worker_dead(pid: int) -> None:
    """gunicorn ``child_exit``: drop a dead worker's live-gauge files (its counters stay summed)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path and os.path.isdir(path):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, path)


def remove_multiprocess_dir() -> None:
    """gunicorn ``on_exit``: delete the directory if ``prepare_multiprocess_dir`` created it."""
    path = os.environ.get(MULTIPROC_ENV)
    if path and os.path.exists(os.path.join(path, _TEMP_DIR_MARK)):
        shutil.rmtree(path, ignore_errors=True)


def gunicorn_on_starting(server) -> None:
    prepare_multiprocess_dir()


def gunicorn_child_exit(server, worker) -> None:
    mark_worker_dead(worker.pid)


def gunicorn_on_exit(server) -> None:
    remove_multiprocess_dir()


# --- the metrics (created on first use, inside the worker) -----------------------------------


_created: SimpleNamespace | None = None
_created_lock = threading.Lock()  # gthread workers: two first requests must not both create them


def _metrics() -> SimpleNamespace:
    global _created
    if _created is None:
        with _created_lock:
            if _created is None:
                _created = _create_metrics()
    return _created


def _create_metrics() -> SimpleNamespace:
    from prometheus_client import Counter, Histogram

    by_request = ["endpoint", "method", "status"]
    return SimpleNamespace(
        requests=Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests answered, by endpoint, method and status.",
            by_request,
        ),
        latency=Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "Time from the request reaching Flask to the response, by endpoint, method and status.",
            by_request,
            buckets=LATENCY_BUCKETS,
        ),
        predictions=Counter(
            f"{PREFIX}_predictions",
            "Predictions returned (and logged), by series (the first METRICS_SERIES_LABELS of the model; "
            "the rest as _other) and kind.",
            ["domain", "kind"],
        ),
        log_write_failures=Counter(
            f"{PREFIX}_prediction_log_write_failures",
            "Requests refused because their predictions could not be written to the log.",
        ),
    )


def observe_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    m = _metrics()
    labels = (endpoint, method, str(status))
    m.requests.labels(*labels).inc()
    m.latency.labels(*labels).observe(seconds)


#: Series that get their own label value, in the model's data order; the rest share OTHER_SERIES.
#: Every label value is a time series in Prometheus: this keeps a 10,000-queue model's metrics bounded.
SERIES_LABELS_ENV = "METRICS_SERIES_LABELS"
DEFAULT_SERIES_LABELS = 50
OTHER_SERIES = "_other"


def series_label_limit() -> int:
    value = os.environ.get(SERIES_LABELS_ENV, "").strip()
    return max(int(value), 0) if value else DEFAULT_SERIES_LABELS


def series_labels(ids: Iterable[str], limit: int | None = None) -> frozenset[str]:
    """The series ids that are label values: the first ``limit`` in data order."""
    limit = series_label_limit() if limit is None else limit
    return frozenset(list(ids)[:limit])


def count_predictions(rows: Iterable[Mapping[str, Any]], labelled: frozenset[str] | None = None) -> None:
    """Count prediction rows by (series, kind): one increment per pair, not per row. Series outside
    ``labelled`` (None: all) are counted under ``_other``."""
    predictions = _metrics().predictions
    tally = Tally((row["domain"], row["kind"]) for row in rows)
    for (domain, kind), n in tally.items():
        label = domain if labelled is None or domain in labelled else OTHER_SERIES
        predictions.labels(label, kind).inc(n)


def count_log_write_failure() -> None:
    _metrics().log_write_failures.inc()


# --- scrape-time model metrics ---------------------------------------------------------------


def read_manifest(model_dir: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The manifest the service loads models from, or None when it is missing or unreadable."""
    try:
        with open(Path(model_dir or output_dir()) / MANIFEST_NAME, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _trained_at(manifest: Mapping[str, Any]) -> dt.datetime | None:
    try:
        stamp = dt.datetime.fromisoformat(str(manifest["trained_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


class ModelCollector:
    """Model version (info) and seconds since training (gauge), read when scraped."""

    def __init__(self, manifest: Callable[[], Mapping[str, Any] | None]) -> None:
        self._manifest = manifest

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

        manifest = self._manifest()
        if not manifest:
            return
        trained_at = _trained_at(manifest)
        yield InfoMetricFamily(
            f"{PREFIX}_model",
            "The model version being served and when it was trained.",
            value={
                "version": str(manifest.get("model_version", "")),
                "trained_at": str(manifest.get("trained_at", "")),
            },
        )
        if trained_at is not None:
            age = time.time() - trained_at.timestamp()
            yield GaugeMetricFamily(
                f"{PREFIX}_model_seconds_since_training",
                "Seconds since the served model was trained.",
                value=age,
            )


# --- Flask wiring ----------------------------------------------------------------------------


def exposition(model_collector: ModelCollector | None = None, *more) -> tuple[bytes, str]:
    """The Prometheus text for this server: all workers' samples plus the model metrics."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
        multiprocess,
    )

    _metrics()  # a worker that has served nothing still exposes the metric names
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    collectors = [c for c in (model_collector, *more) if c is not None]
    if collectors:
        extra = CollectorRegistry()
        for collector in collectors:
            extra.register(collector)
        body += generate_latest(extra)
    return body, CONTENT_TYPE_LATEST


def init_app(app) -> None:
    """Count and time every request, and serve ``GET /metrics``."""
    from flask import Response, g, request

    if os.environ.get(MULTIPROC_ENV):
        os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)
    _metrics()  # created now, in the worker, before any request thread needs them

    def served_manifest() -> Mapping[str, Any] | None:
        # The worker's loaded model when the service's registry has one, else the manifest on disk.
        loaded = getattr(app.extensions.get("model_registry"), "current", None)
        if loaded is not None:
            return {"model_version": loaded.version, "trained_at": loaded.bundle.trained_at}
        return read_manifest(app.config.get("OUTPUT_DIR"))

    collector = ModelCollector(served_manifest)

    # The prediction log is attached after this (service.store.init_app): looked up when scraped.
    accuracy = AccuracyCollector(lambda: getattr(app.extensions.get("model_registry"), "current", None),
                                 lambda: app.extensions.get("prediction_log"), PREFIX, OTHER_SERIES)

    @app.before_request
    def _start_timer() -> None:
        g.setdefault("request_started", time.perf_counter())

    @app.after_request
    def _observe(response):
        started = g.get("request_started")
        endpoint = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ENDPOINT
        seconds = time.perf_counter() - started if started is not None else 0.0
        observe_request(endpoint, request.method, response.status_code, seconds)
        return response

    def metrics_view() -> Response:
        body, content_type = exposition(collector, accuracy)
        return Response(body, content_type=content_type)

    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])
