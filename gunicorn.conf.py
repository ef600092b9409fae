"""gunicorn settings for the service: ``gunicorn -c gunicorn.conf.py app:app``.

Environment: PORT (default 5000), WEB_CONCURRENCY (workers, default 2), GUNICORN_THREADS
(threads per worker, default 2), GUNICORN_MAX_REQUESTS (recycle a worker after this many
requests, default 0 = never), GUNICORN_REUSE_PORT (a listening socket per worker, default off),
GUNICORN_TIMEOUT (seconds a request may run before its worker is restarted, default 30),
GUNICORN_READ_TIMEOUT (seconds a client has to send its request, default 3; see service/worker.py).
Command-line flags override these (tests bind 127.0.0.1 with -b).
"""

import importlib
import importlib.util
import os

# One BLAS/OpenMP thread per worker thread: the GP's linear algebra is on small matrices, where
# OpenBLAS' thread pool costs far more than it gains, and workers x threads already fill the
# cores (measured: a one-month /predict for all domains 169 ms -> 64 ms on 2 cores). Set before
# any worker imports numpy; an operator's explicit value wins.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


bind = f"0.0.0.0:{_int('PORT', 5000)}"
workers = _int("WEB_CONCURRENCY", 2)
threads = _int("GUNICORN_THREADS", 2)
# gthread plus read deadlines for slow clients, a watchdog that makes `timeout` hold for request
# threads, and gunicorn's own errors (414, 431, 400) in the API's JSON error shape.
worker_class = "service.worker.Worker"
# Each worker loads the models itself (create_app runs after fork): no shared pickled state,
# and a bad Output makes workers start not-ready instead of killing the master.
preload_app = False
timeout = _int("GUNICORN_TIMEOUT", 30)  # a request slower than this is a bug; the worker is restarted
graceful_timeout = 30  # SIGTERM: in-flight requests get this long to finish
keepalive = 5
# GUNICORN_REUSE_PORT=1: each worker listens on its own SO_REUSEPORT socket and the kernel spreads
# new connections over the workers. Off by default: with the one shared socket a worker killed
# mid-load loses nothing (its queued connections go to the other), with per-worker sockets 3 of 300
# requests fired right after a SIGKILL were reset (tests/test_faults.py). The shared socket's cost:
# in about one load in three the first worker awake took all 32 keep-alive connections (seen with
# ss) and /predict ran at ~800 instead of ~1,950 req/s (bench/serve.py prints the split).
reuse_port = os.environ.get("GUNICORN_REUSE_PORT", "").strip().lower() in ("1", "true", "yes")
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 10
# The app writes one JSON access line per request itself (service/logs.py, with the request
# id); gunicorn's plain-text line would break "one JSON object per line" on stdout, so it is
# only kept when LOG_FORMAT=text.
accesslog = "-" if os.environ.get("LOG_FORMAT", "json").lower() == "text" else None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# Heartbeat files on tmpfs when there is one (Docker's /tmp may be an overlay on a slow disk).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# No gunicornc control socket ($HOME/.gunicorn/gunicorn.ctl by default since gunicorn 25): the
# container is managed with signals (TERM, HUP), and several servers on one machine (tests, a
# second service) would fight over the one default path.
control_socket_disable = True
# Headers and request line limits stay at gunicorn's defaults; the body limit is the app's
# MAX_CONTENT_LENGTH (413).


def _metrics_hook(name: str):
    """A hook from service.metrics (issue 5) if that module defines it, else None."""
    if importlib.util.find_spec("service.metrics") is None:
        return None
    return getattr(importlib.import_module("service.metrics"), name, None)


def on_starting(server):
    hook = _metrics_hook("gunicorn_on_starting")  # e.g. clean the Prometheus multiprocess dir
    if hook:
        hook(server)


def on_exit(server):
    hook = _metrics_hook("gunicorn_on_exit")  # e.g. remove a private multiprocess dir
    if hook:
        hook(server)


def child_exit(server, worker):
    hook = _metrics_hook("gunicorn_child_exit")  # e.g. prometheus mark_process_dead(worker.pid)
    if hook:
        hook(server, worker)
