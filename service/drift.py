"""Per-series accuracy gauges for Prometheus: the holdout figures the served model was trained with,
and the live figures of what it has served since (logged predictions joined with ``POST /actuals``).

Scraped, not stored: at each ``GET /metrics`` the collector reads the served manifest's holdout
metrics (each series' preferred kind) and the prediction log's accuracy for the newest logged model
version (the served one once it has answered), cached for ``LIVE_CACHE_SECONDS`` so a scrape every
few seconds costs one query a half-minute. Labels are bounded as for the counters: the first
``METRICS_SERIES_LABELS`` series have their own, the rest are one ``_other`` value (mean holdout
figures; live figures weighted by their number of scored predictions). A log that cannot be read
leaves the live gauges out of that scrape; /metrics itself never fails for it.

Drift reads as live MAPE well above the holdout MAPE, or live 95% coverage well below 0.95:
:func:`drift_reasons` is the rule the dashboard marks queues by, and deploy/prometheus/alerts.yml
states the same thresholds in PromQL (tests/test_alerts.py keeps the two equal).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

LIVE_CACHE_SECONDS = 30.0
HOLDOUT_FIGURES = ("mape", "coverage_95")
LIVE_FIGURES = ("mape", "coverage_95")

# The drift rule (mirrored by the alert rules): live MAPE above FACTOR x holdout MAPE + SLACK points
# once MIN_SCORED predictions have an actual, or live 95% coverage below FLOOR once COVERAGE_MIN_SCORED do.
DRIFT_MAPE_FACTOR = 1.5
DRIFT_MAPE_SLACK = 5.0
DRIFT_MIN_SCORED = 3
DRIFT_COVERAGE_FLOOR = 0.75
DRIFT_COVERAGE_MIN_SCORED = 6


def drift_reasons(live: dict, holdout: dict) -> list[str]:
    """Why a series' live figures (``count``, ``mape``, ``coverage_95``) count as drift against its
    holdout figures; [] when they do not (or too few predictions have an actual yet)."""
    reasons = []
    count = live.get("count") or 0
    mape, promised = live.get("mape"), holdout.get("mape")
    if count >= DRIFT_MIN_SCORED and mape is not None and promised is not None \
            and mape > DRIFT_MAPE_FACTOR * promised + DRIFT_MAPE_SLACK:
        reasons.append(f"live MAPE {mape:.1f}% vs {promised:.1f}% at holdout")
    coverage = live.get("coverage_95")
    if count >= DRIFT_COVERAGE_MIN_SCORED and coverage is not None and coverage < DRIFT_COVERAGE_FLOOR:
        reasons.append(f"95% coverage {coverage:.0%}")
    return reasons


def _mean(pairs: list[tuple[float, float]]) -> float | None:
    """Weighted mean of (value, weight) pairs, None without weight."""
    total = sum(w for v, w in pairs if v is not None)
    return None if total == 0 else sum(v * w for v, w in pairs if v is not None) / total


class AccuracyCollector:
    """Holdout and live MAPE / 95% coverage per series label (see the module docstring)."""

    def __init__(self, loaded: Callable[[], Any], prediction_log: Callable[[], Any], prefix: str,
                 other: str) -> None:
        self._loaded = loaded
        self._prefix, self._other = prefix, other
        self._log = prediction_log
        self._lock = threading.Lock()
        self._live: tuple[float, dict[str, dict]] | None = None

    def live(self) -> dict[str, dict]:
        """Domain -> the log's figures for the newest logged version (cached), {} when unreadable."""
        with self._lock:
            if self._live is not None and time.monotonic() - self._live[0] < LIVE_CACHE_SECONDS:
                return self._live[1]
            store = self._log()
            figures: dict[str, dict] = {}
            if store is not None:
                try:
                    figures = {d["domain"]: d["latest_version"] for d in store.accuracy()["domains"]}
                except Exception as exc:  # the log is down: no live gauges this time, /metrics still answers
                    log.warning("live accuracy unavailable for /metrics: %s", type(exc).__name__)
                    return {}
            self._live = (time.monotonic(), figures)
            return figures

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        loaded = self._loaded()
        if loaded is None:
            return
        labelled = loaded.metric_series
        metrics = loaded.bundle.manifest.get("metrics", {})
        holdout = {name: GaugeMetricFamily(f"{self._prefix}_series_holdout_{name}", f"Holdout {name} of the served "
                                           "model (its preferred kind), by series.", labels=["series"])
                   for name in HOLDOUT_FIGURES}
        other: dict[str, list] = {name: [] for name in HOLDOUT_FIGURES}
        for sid, served in loaded.series.items():
            scores = metrics.get(sid, {}).get(served.info.preferred, {})
            for name in HOLDOUT_FIGURES:
                value = scores.get(name)
                if value is None:
                    continue
                if sid in labelled:
                    holdout[name].add_metric([sid], value)
                else:
                    other[name].append((value, 1.0))
        for name, pairs in other.items():
            if (value := _mean(pairs)) is not None:
                holdout[name].add_metric([self._other], value)
        yield from holdout.values()

        live = {name: GaugeMetricFamily(f"{self._prefix}_series_live_{name}", f"Live {name} of the newest logged model "
                                        "version: logged predictions of months with an actual, by series.",
                                        labels=["series"]) for name in LIVE_FIGURES}
        counts = GaugeMetricFamily(f"{self._prefix}_series_live_scored", "Logged predictions of the newest logged "
                                   "version that have an actual (what the live figures are over), by series.",
                                   labels=["series"])
        rest: dict[str, list] = {name: [] for name in LIVE_FIGURES}
        rest_count = 0
        for sid, figures in self.live().items():
            if sid not in loaded.series or not figures["count"]:
                continue
            if sid in labelled:
                counts.add_metric([sid], figures["count"])
                for name in LIVE_FIGURES:
                    if figures[name] is not None:
                        live[name].add_metric([sid], figures[name])
            else:
                rest_count += figures["count"]
                for name in LIVE_FIGURES:
                    rest[name].append((figures[name], figures["count"]))
        if rest_count:
            counts.add_metric([self._other], rest_count)
            for name, pairs in rest.items():
                if (value := _mean(pairs)) is not None:
                    live[name].add_metric([self._other], value)
        yield from live.values()
        yield counts
