"""Per-series work fanned out to processes or a Dask cluster, with progress for long runs.

:func:`map_series` runs ``fn(item)`` for every item and returns the results in the items' order:
on joblib's process pool (``n_jobs`` workers; 1 = in this process) by default, or on the
dask.distributed cluster whose scheduler ``scheduler`` names (:mod:`MLPipeline.dask_executor`;
dask itself is imported only then). Results arrive as they finish, so progress is logged as series complete:
done / total, rate and an estimate of the time left, at most every ``PROGRESS_SECONDS`` (and at
the end), as text or JSON lines (the extras ``done``, ``total``, ``rate``, ``eta_seconds``).

An item whose work cannot be completed at all (its cluster tasks kept losing their workers) is
handed to ``on_error(item, exc)`` when given, whose return value stands in for its result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from joblib import Parallel, delayed

from MLPipeline.dask_executor import map_on_cluster
from MLPipeline.logs import PROGRESS_LOGGER

PROGRESS_SECONDS = 5.0

log = logging.getLogger(PROGRESS_LOGGER)


class Progress:
    """Counts finished items and logs the rate and the time left now and then."""

    def __init__(self, total: int, what: str, every: float = PROGRESS_SECONDS, logger: logging.Logger = log):
        self.total, self.what, self.every, self.log = total, what, every, logger
        self.done = 0
        self.started = time.monotonic()
        self._last = self.started

    def step(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.done < self.total and now - self._last < self.every:
            return
        self._last = now
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        self.log.info("%s: %d/%d series done (%.2f series/s, about %.0f s left)", self.what, self.done, self.total,
                      rate, eta, extra={"step": self.what, "done": self.done, "total": self.total,
                                        "rate": round(rate, 3), "eta_seconds": round(eta, 1)})


def map_series(fn: Callable[[Any], Any], items: Sequence[Any], *, n_jobs: int = 1, what: str = "training",
               scheduler: str | None = None, on_error: Callable[[Any, BaseException], Any] | None = None) -> list:
    """``[fn(item) for item in items]``, on ``n_jobs`` processes or the Dask ``scheduler``, logging progress."""
    progress = Progress(len(items), what)
    if scheduler:

        return map_on_cluster(fn, items, scheduler, progress, on_error)
    if n_jobs <= 1 or len(items) <= 1:
        out = []
        for item in items:
            out.append(fn(item))
            progress.step()
        return out
    results: list[Any] = [None] * len(items)
    parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
    for position, result in parallel(delayed(_indexed)(fn, i, item) for i, item in enumerate(items)):
        results[position] = result
        progress.step()
    return results


def _indexed(fn, position: int, item):
    return position, fn(item)
