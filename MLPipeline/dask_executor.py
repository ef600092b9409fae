"""Per-series work on a dask.distributed cluster (``Engine.py --scheduler tcp://HOST:8786``).

Only imported when a scheduler is named, so the runtime install does not need Dask
(``pip install -r requirements-dask.txt`` adds it). The workers must be able to import this
project (same code and library versions as the machine that runs Engine.py): they unpickle the
per-series job and return the fitted models, which are saved here exactly as a local run saves them.

Fault handling is Dask's own: a task whose worker dies is rescheduled on another worker (the
scheduler's ``distributed.scheduler.allowed-failures``), and a task that raises is retried
``RETRIES`` times. Only an item that still fails after that is handed to ``on_error``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

#: retries of a task that raised (a worker lost mid-task is rescheduled by the scheduler anyway)
RETRIES = 2


class SchedulerError(RuntimeError):
    """The Dask scheduler cannot be used (not installed, unreachable); the message says which."""

log = logging.getLogger("MLPipeline.dask")


def connect(address: str):
    """A client of the scheduler at ``address`` (raises SchedulerError with one readable line)."""
    try:
        from distributed import Client
    except ImportError:
        raise SchedulerError("--scheduler needs dask.distributed, which is not installed: "
                             "pip install -r requirements-dask.txt") from None
    try:
        # waits dask's own connect timeout (distributed.comm.timeouts.connect, 30 s unless configured)
        return Client(address, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SchedulerError(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def map_on_cluster(fn: Callable[[Any], Any], items: Sequence[Any], address: str, progress,
                   on_error: Callable[[Any, BaseException], Any] | None = None) -> list:
    """``[fn(item) for item in items]`` on the cluster at ``address``, in the items' order;
    ``progress`` (an :class:`MLPipeline.executor.Progress`) counts each finished item."""
    from distributed import as_completed

    client = connect(address)
    try:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
        log.info("%s on the Dask cluster at %s: %d workers, %d threads", progress.what, address, len(workers),
                 sum(w.get("nthreads", 0) for w in workers.values()),
                 extra={"scheduler": address, "workers": len(workers)})
        # pure=False: every run is its own work, never a result the cluster remembers from an earlier one
        futures = client.map(fn, list(items), pure=False, retries=RETRIES)
        position = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(items)
        for future in as_completed(futures, loop=client.loop):
            i = position[future.key]
            if future.status == "finished":
                results[i] = future.result()
            else:
                exc = future.exception()
                if on_error is None:
                    raise exc
                log.warning("%s: item %d failed on the cluster (%s: %s)", progress.what, i, type(exc).__name__, exc)
                results[i] = on_error(items[i], exc)
            future.release()  # the worker may drop the fitted models once they are here
            progress.step()
        return results
    finally:
        client.close()
